"""One settings module, read from the environment (see README for every variable).

Safe by default: DEBUG and SANDBOX are off unless the environment turns them on (`make run`
and `make test` do, through whatsappcrm_backend/devenv.py), so a deployment that forgets them
never accepts webhooks signed with the sandbox's published secret. Other defaults run a fresh
checkout: SQLite under var/ and the local Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from whatsappcrm_backend.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Off-by-default production hardening: `manage.py check --deploy` is clean with DEBUG=0.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "whatsappcrm_backend",
    "meta_integration",
    "flows",
    "football_data_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "whatsappcrm_backend.urls"
WSGI_APPLICATION = "whatsappcrm_backend.wsgi.application"
ASGI_APPLICATION = "whatsappcrm_backend.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 60)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and beat share one file: WAL lets readers run beside a writer, IMMEDIATE
    # takes the write lock at BEGIN so two writers queue instead of failing mid-transaction.
    # Connections are kept (CONN_MAX_AGE) as on PostgreSQL: opening one per request and per
    # task cost a connect, two PRAGMAs (journal_mode=WAL takes a lock) and a close each time.
    # Django's backend, with lock waits that end within a millisecond of the lock's release.
    DATABASES["default"]["ENGINE"] = "whatsappcrm_backend.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests that run a real worker need the test database in a file both processes see;
    # the pid keeps two concurrent test runs apart.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db_{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, cache, locks, rate limits ------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")


def _next_redis_db(url: str) -> str:
    """The same server, the next database number: the broker's own, apart from the cache."""
    base, _, db = url.rpartition("/")
    if not db.isdigit():
        raise ImproperlyConfigured(f"REDIS_URL must end with a database number, got {url!r}")
    return f"{base}/{int(db) + 1}"


CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "wcrm"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1,
        },
    }
}

# --- Celery (the app and its policies live in whatsappcrm_backend/celery.py) ----------------
# The broker lives in its own Redis database (REDIS_URL's number + 1), so flushing or evicting
# cache keys, locks and rate limits can never touch queued tasks.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", _next_redis_db(REDIS_URL))
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_CACHE_BACKEND = "default"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Application ---------------------------------------------------------------------------
SANDBOX = env_bool("SANDBOX", False)
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_TIMEOUT", 300)

# WhatsApp Cloud API. In SANDBOX mode the secrets default to the sandbox's own, so a fresh
# checkout runs; outside it a missing secret is a system-check error (meta_integration.checks).
META_GRAPH_BASE_URL = env_str(
    "META_GRAPH_BASE_URL", "http://127.0.0.1:8100" if SANDBOX else "https://graph.facebook.com"
)
META_API_VERSION = env_str("META_API_VERSION", "v23.0")
META_ACCESS_TOKEN = env_str("META_ACCESS_TOKEN", "sandbox-access-token" if SANDBOX else "")
META_APP_SECRET = env_str("META_APP_SECRET", "sandbox-app-secret" if SANDBOX else "")
META_VERIFY_TOKEN = env_str("META_VERIFY_TOKEN", "sandbox-verify-token" if SANDBOX else "")
META_PHONE_NUMBER_ID = env_str("META_PHONE_NUMBER_ID", "106540352242922" if SANDBOX else "")
META_WABA_ID = env_str("META_WABA_ID", "102290129340398" if SANDBOX else "")
META_DISPLAY_PHONE_NUMBER = env_str("META_DISPLAY_PHONE_NUMBER", "15550783881")
META_WEBHOOK_MAX_BYTES = env_int("META_WEBHOOK_MAX_BYTES", 1024 * 1024)
META_HTTP_TIMEOUT = env_float("META_HTTP_TIMEOUT", 10.0)
META_MESSAGES_PER_SECOND = env_int("META_MESSAGES_PER_SECOND", 80)
# BULK sends (notifications, campaigns) per second and number: each brings three status
# webhooks back, so this sizes how much of the machine bulk work may take from replies
# (docs/scaling.md). While customers are chatting (a message in the last 2 s) the lower
# budget applies, so bulk work yields the machine to replies.
META_BULK_MESSAGES_PER_SECOND = env_float("META_BULK_MESSAGES_PER_SECOND", 20.0)
META_BULK_MESSAGES_PER_SECOND_DURING_CHAT = env_float(
    "META_BULK_MESSAGES_PER_SECOND_DURING_CHAT", 1.0
)
META_WEBHOOK_EVENT_RETENTION_DAYS = env_int("META_WEBHOOK_EVENT_RETENTION_DAYS", 7)
META_SANDBOX_HOST = env_str("META_SANDBOX_HOST", "127.0.0.1")
META_SANDBOX_PORT = env_int("META_SANDBOX_PORT", 8100)
META_SANDBOX_WEBHOOK_URL = env_str(
    "META_SANDBOX_WEBHOOK_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}/webhooks/whatsapp/"
)

# The sweeper: rows older than the grace period are taken as stranded and re-enqueued. A
# `sending` row is resent only after META_SENDING_GRACE_SECONDS, longer than the send task's
# hard time limit plus normal status-webhook delay (Meta's echo usually completes it first).
META_SWEEP_GRACE_SECONDS = env_int("META_SWEEP_GRACE_SECONDS", 30)
META_SENDING_GRACE_SECONDS = env_int("META_SENDING_GRACE_SECONDS", 120)
META_SEND_MAX_RETRIES = env_int("META_SEND_MAX_RETRIES", 8)
# Send retries: exponential backoff with jitter from this base, capped below Celery's countdown
# ceiling (whatsappcrm_backend.celery.MAX_COUNTDOWN_SECONDS).
META_SEND_RETRY_BASE_SECONDS = env_float("META_SEND_RETRY_BASE_SECONDS", 2.0)
META_SEND_RETRY_MAX_SECONDS = env_float("META_SEND_RETRY_MAX_SECONDS", 300.0)
META_READ_RECEIPT_MAX_RETRIES = env_int("META_READ_RECEIPT_MAX_RETRIES", 3)
# The circuit breaker shared by every worker through Redis.
META_BREAKER_FAIL_MAX = env_int("META_BREAKER_FAIL_MAX", 5)
META_BREAKER_RESET_SECONDS = env_float("META_BREAKER_RESET_SECONDS", 30.0)
# How long a send may wait for a rate-limit slot before it retries instead.
META_RATE_LIMIT_MAX_WAIT_SECONDS = env_float("META_RATE_LIMIT_MAX_WAIT_SECONDS", 1.0)
META_HTTP_POOL_SIZE = env_int("META_HTTP_POOL_SIZE", 10)
# Unprocessed inbound messages older than this are no longer re-enqueued every sweep.
META_SWEEP_MAX_AGE_SECONDS = env_int("META_SWEEP_MAX_AGE_SECONDS", 24 * 3600)
META_SWEEP_BATCH_SIZE = env_int("META_SWEEP_BATCH_SIZE", 500)
# The sandbox's status callbacks to our webhook, and its per-recipient burst allowance.
META_SANDBOX_STATUS_CALLBACKS = env_bool("META_SANDBOX_STATUS_CALLBACKS", True)
META_SANDBOX_PAIR_BURST = env_int("META_SANDBOX_PAIR_BURST", 45)

# Flows.
FLOWS_GLOBAL_COMMANDS = env_list("FLOWS_GLOBAL_COMMANDS", "menu,cancel")
FLOWS_SESSION_RETENTION_DAYS = env_int("FLOWS_SESSION_RETENTION_DAYS", 30)

# --- Humans in the conversation, templates (issue 13) ------------------------------------------
# A hand-over nobody has answered after this long is flagged in the agent's waiting list.
FLOWS_HANDOVER_ALERT_SECONDS = env_int("FLOWS_HANDOVER_ALERT_SECONDS", 600)
# Failed processing attempts of one inbound message before it is parked (poison message).
FLOWS_MAX_PROCESSING_ATTEMPTS = env_int("FLOWS_MAX_PROCESSING_ATTEMPTS", 3)

# --- Job-operations console (issue 12) ----------------------------------------------------------
# Token for /ops/queues.json, /ops/ready and /metrics without a staff session (header
# X-Ops-Token). Empty turns token access off: then only a staff session gets the figures.
OPS_TOKEN = env_str("OPS_TOKEN", "")
# A queue with a backlog and nothing consumed for this long is "stuck".
OPS_STUCK_SECONDS = env_int("OPS_STUCK_SECONDS", 120)
# A queue whose oldest message waited this long is "busy" (even while it drains).
OPS_BUSY_AGE_SECONDS = env_int("OPS_BUSY_AGE_SECONDS", 30)
# Workers and beat write a heartbeat every OPS_HEARTBEAT_SECONDS; silent longer than
# OPS_WORKER_LOST_SECONDS they are shown as lost, and forgotten after OPS_WORKER_FORGET_SECONDS.
OPS_HEARTBEAT_SECONDS = env_float("OPS_HEARTBEAT_SECONDS", 5.0)
OPS_WORKER_LOST_SECONDS = env_int("OPS_WORKER_LOST_SECONDS", 30)
OPS_WORKER_FORGET_SECONDS = env_int("OPS_WORKER_FORGET_SECONDS", 3600)
# Metrics buckets in Redis expire after this many minutes; per-task timings after a day.
OPS_METRICS_RETENTION_MINUTES = env_int("OPS_METRICS_RETENTION_MINUTES", 60)
OPS_TASK_TIMING_TTL_SECONDS = env_int("OPS_TASK_TIMING_TTL_SECONDS", 24 * 3600)
# Seconds between automatic refreshes of the console pages.
OPS_REFRESH_SECONDS = env_int("OPS_REFRESH_SECONDS", 10)

# --- Football (issue 11) ----------------------------------------------------------------------
# API-Football.
APIFOOTBALL_BASE_URL = env_str(
    "APIFOOTBALL_BASE_URL",
    "http://127.0.0.1:8200" if SANDBOX else "https://v3.football.api-sports.io",
)
APIFOOTBALL_KEY = env_str("APIFOOTBALL_KEY", "sandbox-apifootball-key" if SANDBOX else "")
APIFOOTBALL_HTTP_TIMEOUT = env_float("APIFOOTBALL_HTTP_TIMEOUT", 15.0)
APIFOOTBALL_HTTP_POOL_SIZE = env_int("APIFOOTBALL_HTTP_POOL_SIZE", 4)
# Our own pace, shared by every worker (Redis), below the plan's per-minute limit; the API's
# rate-limit headers and errors pause all workers on top of it (docs/football_data.md).
APIFOOTBALL_REQUESTS_PER_MINUTE = env_int("APIFOOTBALL_REQUESTS_PER_MINUTE", 250)
APIFOOTBALL_RATE_LIMIT_MAX_WAIT_SECONDS = env_float("APIFOOTBALL_RATE_LIMIT_MAX_WAIT_SECONDS", 5.0)
APIFOOTBALL_RATE_LIMIT_RETRY_SECONDS = env_int("APIFOOTBALL_RATE_LIMIT_RETRY_SECONDS", 60)
# Empty: every current league is catalogued (inactive until an operator activates it).
APIFOOTBALL_LEAGUE_IDS = [int(i) for i in env_list("APIFOOTBALL_LEAGUE_IDS")]
APIFOOTBALL_BOOKMAKER_ID = env_int("APIFOOTBALL_BOOKMAKER_ID", 8)  # 0: every bookmaker
APIFOOTBALL_ODDS_DAYS_AHEAD = env_int("APIFOOTBALL_ODDS_DAYS_AHEAD", 7)
APIFOOTBALL_FULL_UPDATE_SECONDS = env_int(
    "APIFOOTBALL_FULL_UPDATE_SECONDS", 120 if SANDBOX else 1800
)
APIFOOTBALL_SCORES_SECONDS = env_int("APIFOOTBALL_SCORES_SECONDS", 20 if SANDBOX else 120)
FOOTBALL_RECONCILE_SECONDS = env_int("FOOTBALL_RECONCILE_SECONDS", 60 if SANDBOX else 600)
# The fake API-Football served by `run_sandboxes` (football_data_app/sandbox).
APIFOOTBALL_SANDBOX_HOST = env_str("APIFOOTBALL_SANDBOX_HOST", "127.0.0.1")
APIFOOTBALL_SANDBOX_PORT = env_int("APIFOOTBALL_SANDBOX_PORT", 8200)
# Match minutes per real second (1.0: a match lasts under two minutes).
APIFOOTBALL_SANDBOX_SPEED = env_float("APIFOOTBALL_SANDBOX_SPEED", 1.0)
APIFOOTBALL_SANDBOX_SEED = env_int("APIFOOTBALL_SANDBOX_SEED", 11)
APIFOOTBALL_SANDBOX_SCENARIO = env_str("APIFOOTBALL_SANDBOX_SCENARIO", "")
APIFOOTBALL_SANDBOX_PER_MINUTE = env_int("APIFOOTBALL_SANDBOX_PER_MINUTE", 300)
APIFOOTBALL_SANDBOX_PER_DAY = env_int("APIFOOTBALL_SANDBOX_PER_DAY", 75000)
# Betting house rules and settlement (docs/betting.md).
# AWD (technical loss) and WO (walkover): void when True, else settle on the awarded score.
FOOTBALL_VOID_NOT_PLAYED_ON_PITCH = env_bool("FOOTBALL_VOID_NOT_PLAYED_ON_PITCH", True)
# A postponed (PST) fixture not played within this many hours is void.
FOOTBALL_POSTPONED_VOID_HOURS = env_int("FOOTBALL_POSTPONED_VOID_HOURS", 48)
# Tickets per settlement batch (SQLite caps it at 150: its bulk UPDATE parameter limit).
FOOTBALL_SETTLEMENT_BATCH_SIZE = env_int("FOOTBALL_SETTLEMENT_BATCH_SIZE", 500)
# Credited once to a new wallet when SANDBOX is on (demo customers can bet at once).
FOOTBALL_SANDBOX_WELCOME_DEPOSIT = env_str("FOOTBALL_SANDBOX_WELCOME_DEPOSIT", "100.00")
FOOTBALL_MAX_STAKE = env_str("FOOTBALL_MAX_STAKE", "10000.00")

# The sandbox's secrets are printed in this repository: outside SANDBOX mode any of them is a
# startup error, never a working credential.
SANDBOX_PUBLISHED_SECRETS = {
    "META_ACCESS_TOKEN": "sandbox-access-token",
    "META_APP_SECRET": "sandbox-app-secret",
    "META_VERIFY_TOKEN": "sandbox-verify-token",
    "APIFOOTBALL_KEY": "sandbox-apifootball-key",
}
if not SANDBOX:
    _published = sorted(k for k, v in SANDBOX_PUBLISHED_SECRETS.items() if globals()[k] == v)
    if _published:
        raise ImproperlyConfigured(
            f"{', '.join(_published)} hold the sandbox's published values while SANDBOX is off: "
            "set real secrets, or SANDBOX=1 for a local run"
        )

# --- Django housekeeping -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# Sandboxes served by `manage.py run_sandboxes`: (factory "module.attr", host, port). Each
# factory returns a server with serve_forever()/shutdown().
SANDBOX_SERVERS: list[tuple[str, str, int]] = [
    ("meta_integration.sandbox.make_server", META_SANDBOX_HOST, META_SANDBOX_PORT),
    ("football_data_app.sandbox.make_server", APIFOOTBALL_SANDBOX_HOST, APIFOOTBALL_SANDBOX_PORT),
]
