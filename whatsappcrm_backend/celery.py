"""The Celery app: queues, the route table, priority levels and reliability policy.

This module is the single place that maps task names to queues and priorities. Tasks are
named by their function name (`@shared_task(name="send_whatsapp_message_task")`) so the route
table stays readable.
"""

from __future__ import annotations

import enum
import logging
import os
import time

from celery import Celery
from celery.signals import beat_init, before_task_publish, task_prerun, worker_ready
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsappcrm_backend.settings")


class Priority(enum.IntEnum):
    """Named levels mapped to broker numbers for Redis, where 0 is served FIRST.

    (RabbitMQ is the reverse. Giving chat tasks 9 "for speed" on Redis puts them last.)
    """

    REPLY = 0  # a customer is waiting: flow processing and its replies
    RECEIPT = 3  # read receipts: visible to the customer, but never ahead of a reply
    MAINTENANCE = 6  # sweeper, idle-session cleanup, retention
    BULK = 9  # football ingestion, settlement notifications, campaigns


LATENCY_QUEUE = "celery"
FOOTBALL_QUEUE = "football_data"
# Purges, prunes and sweeps run long (up to minutes) and must neither hold a latency worker's
# slot nor wait behind replies until beat expires them: they have a queue and a worker of their
# own.
MAINTENANCE_QUEUE = "maintenance"
# Bulk WhatsApp sends (settlement notifications, campaigns): priority orders what is queued,
# not what is running, so on the latency worker a bulk send would hold a slot a reply needs.
# They run on a worker of their own (niced in the Procfile), see route_bulk_sends. (The
# status drain stays on the latency worker: it writes, and a low-priority process holding
# SQLite's write lock while starved of CPU stalls every reply: measured, 35 msg/s p50 75 ms
# -> 607 ms.)
BULK_SEND_QUEUE = "bulk"

TASK_ROUTES: dict[str, dict[str, object]] = {
    # meta_integration: the WhatsApp channel
    "send_whatsapp_message_task": {"queue": LATENCY_QUEUE, "priority": Priority.REPLY},
    "ingest_webhook_event_task": {"queue": LATENCY_QUEUE, "priority": Priority.REPLY},
    "drain_status_events_task": {"queue": LATENCY_QUEUE, "priority": Priority.RECEIPT},
    "send_read_receipt_task": {"queue": LATENCY_QUEUE, "priority": Priority.RECEIPT},
    "sweep_stranded_messages_task": {"queue": MAINTENANCE_QUEUE, "priority": Priority.MAINTENANCE},
    "purge_webhook_events_task": {"queue": MAINTENANCE_QUEUE, "priority": Priority.MAINTENANCE},
    # flows
    "process_flow_for_message_task": {"queue": LATENCY_QUEUE, "priority": Priority.REPLY},
    "cleanup_idle_conversations_task": {
        "queue": MAINTENANCE_QUEUE,
        "priority": Priority.MAINTENANCE,
    },
    "prune_ended_sessions_task": {"queue": MAINTENANCE_QUEUE, "priority": Priority.MAINTENANCE},
    "sync_message_templates_task": {"queue": MAINTENANCE_QUEUE, "priority": Priority.MAINTENANCE},
    # flows (humans in the conversation)
    "flag_unanswered_handovers_task": {
        "queue": MAINTENANCE_QUEUE,
        "priority": Priority.MAINTENANCE,
    },
    # football_data_app: ingestion
    **{
        name: {"queue": FOOTBALL_QUEUE, "priority": Priority.BULK}
        for name in (
            "run_apifootball_full_update_task",
            "fetch_and_update_leagues_task",
            "_prepare_and_launch_event_odds_chord",
            "fetch_events_for_league_task",
            "dispatch_odds_fetching_after_events_task",
            "fetch_odds_for_single_event_task",
            "run_score_and_settlement_task",
            "fetch_scores_for_league_task",
        )
    },
    # football_data_app: settlement (ahead of ingestion on the football queue)
    **{
        name: {"queue": FOOTBALL_QUEUE, "priority": Priority.MAINTENANCE}
        for name in (
            "process_ticket_settlement_task",
            "process_ticket_settlement_batch_task",
            "reconcile_and_settle_pending_items_task",
            "settle_fixture_pipeline_task",
            "settle_outcomes_for_fixture_task",
            "settle_bets_for_fixture_task",
            "settle_tickets_for_fixture_task",
            "send_bet_ticket_settlement_notification_task",
        )
    },
    # whatsappcrm_backend: probes used by health checks and the benchmarks
    "noop_task": {"queue": LATENCY_QUEUE, "priority": Priority.REPLY},
    "record_start_task": {"queue": LATENCY_QUEUE, "priority": Priority.REPLY},
}

BULK_ROUTED_TASKS = frozenset({"send_whatsapp_message_task"})


def send_queue(priority: int | None) -> str:
    """The queue a send of this priority goes to: bulk sends never share a reply's worker."""
    return BULK_SEND_QUEUE if priority is not None and priority >= Priority.BULK else LATENCY_QUEUE


def route_bulk_sends(name: str, args: object, kwargs: object, options: dict, **_: object):
    """Celery router: a send published at BULK priority goes to the bulk queue; everything
    else falls through to TASK_ROUTES (None)."""
    if name in BULK_ROUTED_TASKS and send_queue(options.get("priority")) == BULK_SEND_QUEUE:
        return {"queue": BULK_SEND_QUEUE}
    return None


# The football tasks that call API-Football start no faster than the plan allows: the shared
# limiter would make them wait anyway, and a worker racing through a backlog only takes CPU
# (and caches) from the chat path on the same machine. Per worker; the limiter stays the
# authority across workers.
API_FOOTBALL_TASKS = (
    "fetch_and_update_leagues_task",
    "fetch_events_for_league_task",
    "fetch_odds_for_single_event_task",
    "fetch_scores_for_league_task",
)


class ApiFootballPace:
    """Celery task annotation, read when a task is bound (after Django's settings load)."""

    def annotate(self, task: object) -> dict[str, str] | None:
        if getattr(task, "name", None) not in API_FOOTBALL_TASKS:
            return None
        from django.conf import settings

        return {"rate_limit": f"{int(settings.APIFOOTBALL_REQUESTS_PER_MINUTE)}/m"}


# The longest countdown any task may use (retry backoff is capped below this). Redis
# redelivers an unacked message after the visibility timeout, so it must be longer.
MAX_COUNTDOWN_SECONDS = 600
VISIBILITY_TIMEOUT_SECONDS = 3600

_transport_options = {
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    # A publisher (the webhook, a task sending a reply) must fail fast when Redis is down:
    # the row is already stored and the sweeper re-enqueues it. kombu's default here is to
    # retry the connection for ~6 s, which would hold Meta's webhook call that long.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    "socket_connect_timeout": 2,
}

app = Celery("whatsappcrm_backend")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=[
        Queue(LATENCY_QUEUE, Exchange(LATENCY_QUEUE), routing_key=LATENCY_QUEUE),
        Queue(FOOTBALL_QUEUE, Exchange(FOOTBALL_QUEUE), routing_key=FOOTBALL_QUEUE),
        Queue(MAINTENANCE_QUEUE, Exchange(MAINTENANCE_QUEUE), routing_key=MAINTENANCE_QUEUE),
        Queue(BULK_SEND_QUEUE, Exchange(BULK_SEND_QUEUE), routing_key=BULK_SEND_QUEUE),
    ],
    task_default_queue=LATENCY_QUEUE,
    # No task_default_priority: Celery copies it onto every task, and since 5.7 send_task
    # applies a registered task's own options over the route table, so a default would
    # override every route's priority. Unrouted messages are served as 0 by Redis anyway.
    task_routes=(route_bulk_sends, TASK_ROUTES),
    task_annotations=[ApiFootballPace()],
    broker_transport_options=_transport_options,
    result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
    broker_connection_retry_on_startup=True,
    # A crash mid-task redelivers it (tasks are idempotent), instead of losing it.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=25,
    task_time_limit=30,
    # A leak backstop for the background workers. Replacing a child stalls the task handed to
    # it by ~4 s (celery/celery#9588; bench/recycle_stall.py), so the Procfile's latency worker
    # overrides this with a count it reaches every few hours, not every minute.
    worker_max_tasks_per_child=1000,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_compression="gzip",
    # No STARTED write to the result backend: it would put a DB write before every task start.
    task_track_started=False,
    # No task events: nothing here consumes them (the console reads its own Redis metrics and
    # worker heartbeats), and each event is a broker publish on the hot path.
    worker_send_task_events=False,
    task_send_sent_event=False,
    result_extended=True,
    # Hot-path tasks keep their outcome on their own rows (outbound status, processed_at):
    # a result row per reply would cost a DB write per task (~6 ms on SQLite, measured in
    # bench/task_floor.py). Failures are still stored; scheduled tasks opt in to results.
    task_ignore_result=True,
    task_store_errors_even_if_ignored=True,
    timezone="UTC",
    enable_utc=True,
)
# Celery's Django fixup closes every DB connection before and after each task unless this is
# set: on PostgreSQL that is a new connection, about 20-40 ms, on every task of the hot path
# (measured with bench/chat_latency.py). Keep connections; `refresh_stale_connections` below
# drops the unusable or expired ones (CONN_MAX_AGE, health checks) as Django does per request.
app.conf["CELERY_DB_REUSE_MAX"] = 1000
app.autodiscover_tasks()


@before_task_publish.connect
def stamp_publish_time(headers: dict | None = None, **_: object) -> None:
    """Every message carries when it was published, so queue wait can be measured."""
    if headers is not None:
        headers.setdefault("published_at", time.time())


@task_prerun.connect
def refresh_stale_connections(**_: object) -> None:
    from django.db import close_old_connections

    close_old_connections()


logger = logging.getLogger(__name__)

# Policies under which Redis may evict a key that has no TTL, such as a queue's list.
EVICTING_POLICIES = frozenset({"allkeys-lru", "allkeys-lfu", "allkeys-random"})


def broker_eviction_warning(policy: str | None) -> str | None:
    """What to say about the broker's `maxmemory-policy` (None: nothing to say)."""
    if policy in EVICTING_POLICIES:
        return (
            f"Redis maxmemory-policy is {policy}: under memory pressure Redis may evict queued "
            "tasks. Use noeviction (or a volatile-* policy) for the broker."
        )
    return None


@worker_ready.connect
@beat_init.connect
def warn_if_broker_may_evict(**_: object) -> None:
    try:
        with app.connection_for_write() as connection:
            client = connection.default_channel.client
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except Exception as exc:  # noqa: BLE001 - CONFIG may be disabled on a managed Redis
        logger.info("could not read the broker's maxmemory-policy: %s", exc)
        return
    message = broker_eviction_warning(policy)
    if message:
        logger.warning(message)
