"""Safe by default: nothing in the repository is a working credential of a deployment."""

from __future__ import annotations

import os

import pytest

from tests.foundation.test_settings import run_django
from whatsappcrm_backend import devenv
from whatsappcrm_backend.celery import (
    LATENCY_QUEUE,
    MAINTENANCE_QUEUE,
    TASK_ROUTES,
    Priority,
    broker_eviction_warning,
)

PRINT_FLAGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.DEBUG, settings.SANDBOX, settings.CELERY_BROKER_URL)"
)
SANDBOX_SECRETS = {
    "META_ACCESS_TOKEN": "sandbox-access-token",
    "META_APP_SECRET": "sandbox-app-secret",
    "META_VERIFY_TOKEN": "sandbox-verify-token",
    "APIFOOTBALL_KEY": "sandbox-apifootball-key",
}
REAL_SECRETS = {
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
    "META_ACCESS_TOKEN": "token",
    "META_APP_SECRET": "secret",
    "META_VERIFY_TOKEN": "verify",
    "APIFOOTBALL_KEY": "key",
}


def test_debug_and_sandbox_default_off():
    result = run_django({**REAL_SECRETS, "REDIS_URL": "redis://127.0.0.1:6379/4"}, PRINT_FLAGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "redis://127.0.0.1:6379/5"]


@pytest.mark.parametrize("name", sorted(SANDBOX_SECRETS))
def test_a_sandbox_secret_without_sandbox_is_a_startup_error(name):
    env = {**REAL_SECRETS, "DEBUG": "0", "SANDBOX": "0", name: SANDBOX_SECRETS[name]}
    result = run_django(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name} hold" in result.stderr or f"{name}," in result.stderr


def test_debug_alone_does_not_turn_the_sandbox_on():
    result = run_django({**REAL_SECRETS, "DEBUG": "1", "SANDBOX": "0"}, PRINT_FLAGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["True", "False"]


def test_make_run_and_make_test_turn_debug_and_sandbox_on(monkeypatch):
    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.delenv("SANDBOX", raising=False)
    devenv.local_defaults()
    assert (os.environ["DEBUG"], os.environ["SANDBOX"]) == ("1", "1")


def test_an_explicit_choice_is_kept_by_the_dev_launcher(monkeypatch):
    monkeypatch.setenv("SANDBOX", "0")
    devenv.local_defaults()
    assert os.environ["SANDBOX"] == "0"


def test_the_broker_has_its_own_redis_database(settings):
    cache_db = settings.REDIS_URL.rsplit("/", 1)[1]
    broker_db = settings.CELERY_BROKER_URL.rsplit("/", 1)[1]
    assert int(broker_db) == int(cache_db) + 1


def test_a_redis_url_without_a_database_number_is_refused():
    result = run_django({"DEBUG": "1", "SANDBOX": "1", "REDIS_URL": "redis://127.0.0.1:6379"})
    assert result.returncode != 0
    assert "REDIS_URL must end with a database number" in result.stderr


@pytest.mark.parametrize(
    ("policy", "warns"),
    [
        ("noeviction", False),
        ("volatile-lru", False),
        ("volatile-ttl", False),
        ("allkeys-lru", True),
        ("allkeys-lfu", True),
        ("allkeys-random", True),
        (None, False),
    ],
)
def test_an_evicting_broker_policy_is_warned_about(policy, warns):
    message = broker_eviction_warning(policy)
    assert (message is not None) == warns
    if warns:
        assert policy in message and "noeviction" in message


def test_maintenance_work_is_off_the_latency_queue():
    maintenance = {n for n, r in TASK_ROUTES.items() if r["priority"] == Priority.MAINTENANCE}
    latency_maintenance = {n for n in maintenance if TASK_ROUTES[n]["queue"] == LATENCY_QUEUE}
    assert latency_maintenance == set()
    assert TASK_ROUTES["sweep_stranded_messages_task"]["queue"] == MAINTENANCE_QUEUE
