"""Settlement tasks: thin wrappers, the reconcile sweep and its single-run guard."""

from __future__ import annotations

from decimal import Decimal

import pytest

from football_data_app.models import BetTicket
from football_data_app.services import settlement as service
from football_data_app.tasks import settlement as tasks
from tests.football_data_app.betting_factories import (
    finish,
    fixture_with_markets,
    funded_wallet,
    place,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    calls: list[tuple[str, tuple]] = []

    def record(task, *args, **options):
        calls.append((task if isinstance(task, str) else task.name, args))
        return True

    monkeypatch.setattr(tasks, "publish", record)
    return calls


def test_task_chain_links_settle_a_fixture_when_called_in_order(redis_conn):
    fixture, ids = fixture_with_markets()
    contact = funded_wallet(amount="10.00").contact
    ticket = place(contact, [ids["Home"]], "10")
    finish(fixture, 1, 0)
    assert tasks.settle_outcomes_for_fixture_task(fixture.pk)["action"] == "settle"
    assert tasks.settle_bets_for_fixture_task(fixture.pk)["legs"] == 1
    assert tasks.settle_tickets_for_fixture_task(fixture.pk)["settled"] == 1
    assert tasks.process_ticket_settlement_task(ticket.pk)["settled"] == 0  # already settled
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("won", Decimal("20.00"))
    assert tasks.send_bet_ticket_settlement_notification_task(ticket.pk)["outcome"] == "created"
    assert tasks.send_bet_ticket_settlement_notification_task(ticket.pk)["outcome"] == "already"


def test_reconcile_publishes_each_kind_of_forgotten_work(redis_conn, published):
    final, ids_1 = fixture_with_markets()
    other, ids_2 = fixture_with_markets()
    contact = funded_wallet(amount="30.00").contact
    place(contact, [ids_1["Home"]], "10")  # its fixture is final, nothing settled yet
    ready = place(contact, [ids_2["Draw"]], "10")  # legs settled, ticket not
    notified_later = place(contact, [ids_1["Away"]], "10")
    finish(final, 2, 0)
    finish(other, 0, 0)
    service.fixture_settle_legs(fixture_id=other.pk)
    BetTicket.objects.filter(pk=notified_later.pk).update(
        status="lost", payout=0, settled_at=final.kickoff
    )
    result = tasks.reconcile_and_settle_pending_items_task()
    assert result == {"fixtures": 1, "tickets": 1, "notifications": 1}
    assert published == [
        ("settle_fixture_pipeline_task", (final.pk,)),
        ("process_ticket_settlement_batch_task", ([ready.pk],)),
        ("send_bet_ticket_settlement_notification_task", (notified_later.pk,)),
    ]


def test_reconcile_overlapping_run_is_skipped(redis_conn, published):
    lock = redis_conn.lock("lock:reconcile_and_settle_pending_items_task", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert tasks.reconcile_and_settle_pending_items_task() == {"skipped": True}
    finally:
        lock.release()
    assert published == []


def test_every_settlement_task_has_time_limits():
    for task in (
        tasks.settle_fixture_pipeline_task,
        tasks.settle_outcomes_for_fixture_task,
        tasks.settle_bets_for_fixture_task,
        tasks.settle_tickets_for_fixture_task,
        tasks.process_ticket_settlement_batch_task,
        tasks.process_ticket_settlement_task,
        tasks.reconcile_and_settle_pending_items_task,
        tasks.send_bet_ticket_settlement_notification_task,
    ):
        assert task.soft_time_limit and task.time_limit > task.soft_time_limit, task.name
        assert task.queue == "football_data"
