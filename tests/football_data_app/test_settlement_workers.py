"""Two real Celery workers settle the same fixture at once: one payout per ticket, exactly.

Run on PostgreSQL (`select_for_update(skip_locked=True)`) and on SQLite (IMMEDIATE
transactions); the invariant balance == ledger sum must hold either way.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Count

from football_data_app.models import BetTicket, LedgerEntry, LedgerKind
from football_data_app.services.wallet import wallets_out_of_balance
from meta_integration.models import OutboundMessage
from tests.conftest import wait_for
from tests.football_data_app.betting_factories import (
    finish,
    fixture_with_markets,
    funded_wallet,
    new_contact,
    place,
)
from whatsappcrm_backend.celery import app

pytestmark = pytest.mark.worker

TICKETS = 60


def test_two_workers_settle_one_fixture_once(celery_worker_factory):
    fixture, ids = fixture_with_markets()
    labels = ("Home", "Draw", "Away", "Over 2.5", "Home -0.75", "Yes")
    tickets = []
    for i in range(TICKETS):
        contact = new_contact()
        funded_wallet(contact, amount="10.00")
        tickets.append(place(contact, [ids[labels[i % len(labels)]]], "10.00").pk)
    finish(fixture, 2, 1)

    # Small batches so that the two workers really interleave on the same rows.
    env = {"FOOTBALL_SETTLEMENT_BATCH_SIZE": "7"}
    workers = [
        celery_worker_factory(queues="football_data", concurrency=1, env=env) for _ in range(2)
    ]

    sent = [
        app.send_task("settle_fixture_pipeline_task", args=[fixture.pk]),
        app.send_task("settle_fixture_pipeline_task", args=[fixture.pk]),  # a second beat
        app.send_task("settle_bets_for_fixture_task", args=[fixture.pk]),
        app.send_task("settle_tickets_for_fixture_task", args=[fixture.pk]),
        app.send_task("settle_tickets_for_fixture_task", args=[fixture.pk]),  # redelivery
        app.send_task("process_ticket_settlement_batch_task", args=[tickets]),
        app.send_task("process_ticket_settlement_batch_task", args=[list(reversed(tickets))]),
    ]
    wait_for(lambda: not BetTicket.objects.filter(settled_at__isnull=True).exists(), timeout=120)

    def logs() -> str:
        return "".join(w.log() for w in workers)

    wait_for(lambda: all(f"[{r.id}] succeeded" in logs() for r in sent), timeout=120)
    # Every settled ticket is notified, once (the notification tasks run after settlement).
    wait_for(lambda: OutboundMessage.objects.count() == TICKETS, timeout=120)

    payouts = LedgerEntry.objects.filter(kind=LedgerKind.PAYOUT)
    per_ticket = payouts.values("ticket").annotate(n=Count("pk")).filter(n__gt=1)
    assert not per_ticket.exists()
    # 2-1: Home 2.00, Over 2.5 1.90, Home -0.75 half won 1.45, Yes 1.80 win; Draw, Away lose.
    won = BetTicket.objects.filter(status="won")
    assert won.count() == payouts.count() == 40
    expected = Decimal("10") * (Decimal("20.00") + Decimal("19.00") + Decimal("14.50") + 18)
    assert sum(won.values_list("payout", flat=True)) == expected
    assert BetTicket.objects.filter(status="lost").count() == 20
    assert wallets_out_of_balance() == []
    assert OutboundMessage.objects.values("idempotency_key").distinct().count() == TICKETS
    assert "raised" not in logs() and "Retry in" not in logs()
