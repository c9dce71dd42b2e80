"""Settlement services: right payouts, exactly once, in batches of constant query count."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from football_data_app.models import BetTicket, Fixture, LedgerEntry, Outcome, Wallet
from football_data_app.services import settlement as service
from football_data_app.services.wallet import wallets_out_of_balance
from tests.football_data_app.betting_factories import (
    finish,
    fixture_with_markets,
    funded_wallet,
    new_contact,
    place,
)

pytestmark = pytest.mark.django_db


def settle_fixture(fixture: Fixture, **kwargs) -> dict:
    service.fixture_settle_outcomes(fixture_id=fixture.pk)
    service.fixture_settle_legs(fixture_id=fixture.pk)
    return service.fixture_settle_tickets(fixture_id=fixture.pk, notify=False, **kwargs)


def balance(contact) -> Decimal:
    return Wallet.objects.get(contact=contact).balance


def test_pipeline_settles_outcomes_legs_and_pays_each_winner_once():
    fixture, ids = fixture_with_markets()
    contact = funded_wallet(amount="100.00").contact
    home = place(contact, [ids["Home"]], "10")  # 2.00 -> won 20.00
    over = place(contact, [ids["Over 2.5"]], "10")  # 2-1 is 3 goals -> won 19.00
    handicap = place(contact, [ids["Home -0.75"]], "10")  # won by 1: half won 14.50
    btts_no = place(contact, [ids["No"]], "10")  # lost
    assert balance(contact) == Decimal("60.00")
    finish(fixture, 2, 1)

    outcomes = service.fixture_settle_outcomes(fixture_id=fixture.pk)
    assert outcomes["action"] == "settle"
    results = dict(Outcome.objects.filter(market__fixture=fixture).values_list("label", "result"))
    assert results == {
        "Home": "won",
        "Draw": "lost",
        "Away": "lost",
        "Over 2.5": "won",
        "Under 2.5": "lost",
        "Home -0.75": "half_won",
        "Away +0.75": "half_lost",
        "Yes": "won",
        "No": "lost",
    }
    fixture.refresh_from_db()
    assert fixture.outcomes_settled_at is not None
    assert service.fixture_settle_legs(fixture_id=fixture.pk)["legs"] == 4
    totals = service.fixture_settle_tickets(fixture_id=fixture.pk, notify=False)
    assert totals["settled"] == 4
    expected = {home: ("won", "20.00"), over: ("won", "19.00"), handicap: ("won", "14.50")}
    expected[btts_no] = ("lost", "0.00")
    for ticket, (status, payout) in expected.items():
        ticket.refresh_from_db()
        assert (ticket.status, ticket.payout) == (status, Decimal(payout))
        assert ticket.settled_at is not None
    assert balance(contact) == Decimal("113.50")
    assert LedgerEntry.objects.filter(kind="payout").count() == 3

    # Settling again (a redelivered task, a re-run pipeline) changes nothing.
    assert settle_fixture(fixture)["settled"] == 0
    assert service.tickets_settle(ticket_ids=[home.pk, over.pk], notify=False)["settled"] == 0
    assert balance(contact) == Decimal("113.50")
    assert LedgerEntry.objects.filter(kind="payout").count() == 3
    assert wallets_out_of_balance() == []


def test_90_minute_markets_ignore_extra_time_and_penalties():
    fixture, ids = fixture_with_markets()
    contact = funded_wallet().contact
    draw = place(contact, [ids["Draw"]], "10")
    home = place(contact, [ids["Home"]], "10")
    finish(fixture, 1, 1, status="PEN", goals_home=2, goals_away=1, penalty_home=4)
    settle_fixture(fixture)
    draw.refresh_from_db()
    home.refresh_from_db()
    assert (draw.status, draw.payout) == ("won", Decimal("32.00"))
    assert home.status == "lost"


def test_cancelled_fixture_refunds_every_stake():
    fixture, ids = fixture_with_markets()
    contact = funded_wallet(amount="30.00").contact
    tickets = [place(contact, [ids[label]], "10") for label in ("Home", "Yes", "Under 2.5")]
    Fixture.objects.filter(pk=fixture.pk).update(status="CANC")
    assert settle_fixture(fixture)["settled"] == 3
    for ticket in tickets:
        ticket.refresh_from_db()
        assert (ticket.status, ticket.payout) == ("void", Decimal("10.00"))
    assert LedgerEntry.objects.filter(kind="refund").count() == 3
    assert balance(contact) == Decimal("30.00")
    assert set(
        Outcome.objects.filter(market__fixture=fixture).values_list("result", flat=True)
    ) == {"void"}


def test_missing_score_waits_with_a_reason_and_invents_nothing():
    fixture, ids = fixture_with_markets()
    contact = funded_wallet().contact
    ticket = place(contact, [ids["Home"]], "10")
    Fixture.objects.filter(pk=fixture.pk).update(status="AET", goals_home=2, goals_away=1)
    assert service.fixture_settle_outcomes(fixture_id=fixture.pk)["action"] == "wait"
    legs = service.fixture_settle_legs(fixture_id=fixture.pk)
    assert legs["action"] == "wait"
    leg = ticket.legs.get()
    assert leg.result == "" and "90-minute score is missing" in leg.waiting_reason
    assert service.fixture_settle_tickets(fixture_id=fixture.pk, notify=False)["settled"] == 0
    ticket.refresh_from_db()
    assert ticket.status == "placed"


def test_postponed_fixture_voids_after_the_configured_hours(settings):
    settings.FOOTBALL_POSTPONED_VOID_HOURS = 48
    fixture, ids = fixture_with_markets()
    contact = funded_wallet().contact
    ticket = place(contact, [ids["Home"]], "10")
    Fixture.objects.filter(pk=fixture.pk).update(
        status="PST", postponed_at=timezone.now() - timedelta(hours=47)
    )
    assert settle_fixture(fixture)["settled"] == 0
    Fixture.objects.filter(pk=fixture.pk).update(postponed_at=timezone.now() - timedelta(hours=49))
    assert settle_fixture(fixture)["settled"] == 1
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("void", Decimal("10.00"))


def test_accumulator_waits_for_its_other_fixture_then_pays():
    first, ids_1 = fixture_with_markets()
    second, ids_2 = fixture_with_markets()
    contact = funded_wallet(amount="10.00").contact
    ticket = place(contact, [ids_1["Home"], ids_2["Home -0.75"]], "10")
    settle_fixture(finish(first, 1, 0))
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout, ticket.settled_at) == ("partially_settled", None, None)
    assert service.tickets_ready_to_settle() == []
    settle_fixture(finish(second, 1, 0))  # half won: 1 + 0.9/2 = 1.45
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("won", Decimal("29.00"))
    assert balance(contact) == Decimal("29.00")


def test_accumulator_with_a_lost_leg_is_lost_at_once():
    first, ids_1 = fixture_with_markets()
    second, ids_2 = fixture_with_markets()
    contact = funded_wallet(amount="10.00").contact
    ticket = place(contact, [ids_1["Away"], ids_2["Home"]], "10")
    settle_fixture(finish(first, 1, 0))
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("lost", Decimal("0.00"))
    settle_fixture(finish(second, 1, 0))
    ticket.refresh_from_db()
    assert ticket.status == "lost"
    assert not LedgerEntry.objects.filter(ticket=ticket, kind="payout").exists()


def test_accumulator_with_a_void_leg_pays_on_the_others():
    first, ids_1 = fixture_with_markets()
    second, ids_2 = fixture_with_markets()
    contact = funded_wallet(amount="10.00").contact
    ticket = place(contact, [ids_1["Home"], ids_2["Home"]], "10")
    Fixture.objects.filter(pk=second.pk).update(status="ABD")
    settle_fixture(second)
    settle_fixture(finish(first, 3, 0))
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("won", Decimal("20.00"))


def test_operator_void_of_a_fixture_refunds():
    fixture, ids = fixture_with_markets()
    contact = funded_wallet(amount="10.00").contact
    ticket = place(contact, [ids["Home"]], "10")
    assert service.fixture_void(fixture_id=fixture.pk) == 1
    service.fixture_settle_tickets(fixture_id=fixture.pk, notify=False)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("void", Decimal("10.00"))
    assert ticket.legs.get().waiting_reason == "voided by an operator"


def test_settled_tickets_are_notified_after_commit(django_capture_on_commit_callbacks, monkeypatch):
    published = []
    monkeypatch.setattr(
        "whatsappcrm_backend.publishing.publish", lambda task, *args, **kw: published.append(args)
    )
    fixture, ids = fixture_with_markets()
    contact = funded_wallet().contact
    ticket = place(contact, [ids["Home"]], "10")
    finish(fixture, 1, 0)
    service.fixture_settle_legs(fixture_id=fixture.pk)
    with django_capture_on_commit_callbacks(execute=True):
        service.fixture_settle_tickets(fixture_id=fixture.pk)
    assert published == [(ticket.pk,)]
    assert service.tickets_unnotified() == [ticket.pk]


def _tickets_on(fixture_count: int, ids: dict[str, int]) -> None:
    for i in range(fixture_count):
        contact = new_contact()
        funded_wallet(contact, amount="20.00")
        place(contact, [ids[("Home", "Draw", "Away", "Over 2.5", "No")[i % 5]]], "10")


@pytest.mark.parametrize("count", [10, 50])
def test_queries_per_batch_are_constant(count, django_assert_num_queries):
    fixture, ids = fixture_with_markets()
    _tickets_on(count, ids)
    finish(fixture, 2, 0)
    service.fixture_settle_legs(fixture_id=fixture.pk)
    # savepoint, lock ids, legs, tickets UPDATE, ledger check, ledger INSERT, wallets UPDATE,
    # release: the same for 10 tickets as for 50.
    with django_assert_num_queries(8):
        batch = service.tickets_settle_batch(
            candidates=service.fixture_tickets(fixture.pk), batch_size=100, notify=False
        )
    assert len(batch.settled) == count
    won = BetTicket.objects.filter(status="won").count()
    assert LedgerEntry.objects.filter(kind="payout").count() == won > 0
    assert wallets_out_of_balance() == []


def test_batches_split_the_work_and_page_by_id():
    fixture, ids = fixture_with_markets()
    _tickets_on(25, ids)
    finish(fixture, 0, 0)
    service.fixture_settle_legs(fixture_id=fixture.pk)
    totals = service.fixture_settle_tickets(fixture_id=fixture.pk, batch_size=10, notify=False)
    assert (totals["batches"], totals["settled"]) == (3, 25)
    assert not BetTicket.objects.filter(settled_at__isnull=True).exists()
    assert wallets_out_of_balance() == []


def test_reconcile_selectors_find_forgotten_work():
    fixture, ids = fixture_with_markets()
    contact = funded_wallet().contact
    ticket = place(contact, [ids["Home"]], "10")
    assert service.fixtures_needing_settlement() == []
    finish(fixture, 1, 0)
    assert service.fixtures_needing_settlement() == [fixture.pk]
    service.fixture_settle_legs(fixture_id=fixture.pk)
    assert service.fixtures_needing_settlement() == []
    assert service.tickets_ready_to_settle() == [ticket.pk]
    service.tickets_settle(ticket_ids=[ticket.pk], notify=False)
    assert service.tickets_ready_to_settle() == []
