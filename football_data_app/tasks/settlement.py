"""Settlement tasks: outcomes, tickets, payouts and settlement notifications.

Thin: each takes ids, calls one service and owns its retry policy. Every one is idempotent
(a settled ticket is never selected again, a ledger entry is unique per (ticket, kind), a
notification is claimed by `notified_at`), so redelivery, a re-run pipeline or two beats
change nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import chain, shared_task
from django.db import DatabaseError

from football_data_app.services import notifications
from football_data_app.services import settlement as service
from whatsappcrm_backend.celery import FOOTBALL_QUEUE
from whatsappcrm_backend.locks import single_run
from whatsappcrm_backend.publishing import publish

logger = logging.getLogger(__name__)

# A race on claimed rows or a lock timeout: retry shortly (the work is idempotent).
RETRY = {
    "autoretry_for": (service.SettlementRace, DatabaseError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
    "acks_late": True,
}
# One run of the tickets task settles at most this many batches, then re-enqueues itself, so
# no run nears its time limit however many tickets a fixture has.
MAX_BATCHES_PER_RUN = 100


@shared_task(
    name="settle_fixture_pipeline_task", queue=FOOTBALL_QUEUE, soft_time_limit=20, time_limit=30
)
def settle_fixture_pipeline_task(fixture_id: int) -> dict[str, Any]:
    """Outcomes -> legs -> tickets for one fixture, as a chain (each link idempotent)."""
    chain(
        settle_outcomes_for_fixture_task.si(fixture_id),
        settle_bets_for_fixture_task.si(fixture_id),
        settle_tickets_for_fixture_task.si(fixture_id),
    ).apply_async()
    return {"fixture_id": fixture_id, "launched": True}


@shared_task(
    name="settle_outcomes_for_fixture_task",
    queue=FOOTBALL_QUEUE,
    soft_time_limit=50,
    time_limit=60,
    **RETRY,
)
def settle_outcomes_for_fixture_task(fixture_id: int) -> dict[str, Any]:
    return {"fixture_id": fixture_id, **service.fixture_settle_outcomes(fixture_id=fixture_id)}


@shared_task(
    name="settle_bets_for_fixture_task",
    queue=FOOTBALL_QUEUE,
    soft_time_limit=50,
    time_limit=60,
    **RETRY,
)
def settle_bets_for_fixture_task(fixture_id: int) -> dict[str, Any]:
    return {"fixture_id": fixture_id, **service.fixture_settle_legs(fixture_id=fixture_id)}


@shared_task(
    name="settle_tickets_for_fixture_task",
    queue=FOOTBALL_QUEUE,
    soft_time_limit=240,
    time_limit=300,
    **RETRY,
)
def settle_tickets_for_fixture_task(fixture_id: int) -> dict[str, Any]:
    totals = service.fixture_settle_tickets(fixture_id=fixture_id, max_batches=MAX_BATCHES_PER_RUN)
    if totals["batches"] >= MAX_BATCHES_PER_RUN:
        publish("settle_tickets_for_fixture_task", fixture_id)  # the rest, in a fresh run
    return {"fixture_id": fixture_id, **totals}


@shared_task(
    name="process_ticket_settlement_batch_task",
    queue=FOOTBALL_QUEUE,
    soft_time_limit=100,
    time_limit=120,
    **RETRY,
)
def process_ticket_settlement_batch_task(ticket_ids: list[int]) -> dict[str, Any]:
    return service.tickets_settle(ticket_ids=[int(i) for i in ticket_ids])


@shared_task(
    name="process_ticket_settlement_task",
    queue=FOOTBALL_QUEUE,
    soft_time_limit=20,
    time_limit=30,
    **RETRY,
)
def process_ticket_settlement_task(ticket_id: int) -> dict[str, Any]:
    return {"ticket_id": ticket_id, **service.tickets_settle(ticket_ids=[int(ticket_id)])}


@shared_task(
    name="send_bet_ticket_settlement_notification_task",
    queue=FOOTBALL_QUEUE,
    soft_time_limit=20,
    time_limit=30,
    **RETRY,
)
def send_bet_ticket_settlement_notification_task(ticket_id: int) -> dict[str, Any]:
    """Creates the outbound row (BULK priority); the send task goes out after commit."""
    return {
        "ticket_id": ticket_id,
        "outcome": notifications.ticket_notify_settled(ticket_id=ticket_id),
    }


@shared_task(
    name="reconcile_and_settle_pending_items_task",
    queue=FOOTBALL_QUEUE,
    ignore_result=False,
    soft_time_limit=100,
    time_limit=120,
)
@single_run("reconcile_and_settle_pending_items_task", timeout=120)
def reconcile_and_settle_pending_items_task() -> dict[str, Any]:
    """Catch whatever a lost message left behind: unsettled final fixtures, decided but
    unsettled tickets, settled but unnotified tickets. Each is published to its own task."""
    fixtures = service.fixtures_needing_settlement()
    for fixture_id in fixtures:
        publish(settle_fixture_pipeline_task, fixture_id)
    tickets = service.tickets_ready_to_settle()
    for start in range(0, len(tickets), 200):
        publish(process_ticket_settlement_batch_task, tickets[start : start + 200])
    unnotified = service.tickets_unnotified()
    for ticket_id in unnotified:
        publish(send_bet_ticket_settlement_notification_task, ticket_id)
    return {"fixtures": len(fixtures), "tickets": len(tickets), "notifications": len(unnotified)}
