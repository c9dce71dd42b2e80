"""Placing tickets: every refusal writes nothing; agreed odds never follow the catalogue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from football_data_app.models import BetLeg, BetTicket, Fixture, LedgerEntry, Outcome
from football_data_app.services.tickets import TicketRefused, potential_return, ticket_place
from tests.football_data_app.betting_factories import (
    fixture_with_markets,
    funded_wallet,
    new_contact,
    place,
)
from tests.football_data_app.factories import make_market

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    wallet = funded_wallet(amount="50.00")
    return wallet.contact


def _nothing_written(contact, balance: str = "50.00") -> None:
    assert not BetTicket.objects.filter(contact=contact).exists()
    assert contact.wallet.entries.count() == 1  # the deposit only
    contact.wallet.refresh_from_db()
    assert contact.wallet.balance == Decimal(balance)


def test_single_stores_agreed_odds_line_label_and_debits_the_stake(customer):
    fixture, ids = fixture_with_markets()
    ticket = place(customer, [ids["Home -0.75"]], "12.50")
    assert ticket.kind == "single" and ticket.status == "placed"
    leg = ticket.legs.get()
    assert (leg.odds, leg.line, leg.label, leg.bet_type_name, leg.fixture_id) == (
        Decimal("1.900"),
        Decimal("-0.75"),
        "Home -0.75",
        "Asian Handicap",
        fixture.pk,
    )
    customer.wallet.refresh_from_db()
    assert customer.wallet.balance == Decimal("37.50")
    stake = LedgerEntry.objects.get(ticket=ticket)
    assert (stake.kind, stake.amount) == ("stake", Decimal("-12.50"))
    assert potential_return(ticket) == Decimal("23.75")


def test_accumulator_one_leg_per_fixture(customer):
    first, ids_1 = fixture_with_markets()
    second, ids_2 = fixture_with_markets()
    ticket = place(customer, [ids_1["Home"], ids_2["Over 2.5"]], "10")
    assert ticket.kind == "accumulator"
    assert sorted(ticket.legs.values_list("fixture_id", flat=True)) == sorted([first.pk, second.pk])
    assert potential_return(ticket) == Decimal("38.00")
    with pytest.raises(TicketRefused, match="one selection per fixture"):
        place(customer, [ids_1["Home"], ids_1["Over 2.5"]], "10")
    assert BetTicket.objects.count() == 1


@pytest.mark.parametrize(
    ("stake", "message"),
    [
        ("0", "positive"),
        ("-5", "positive"),
        ("1.234", "positive"),
        ("abc", "positive"),
        ("50.01", r"balance is 50\.00"),
        ("20000", "most you can stake"),
    ],
)
def test_bad_stakes_are_refused(customer, stake, message):
    _, ids = fixture_with_markets()
    with pytest.raises(TicketRefused, match=message):
        place(customer, [ids["Home"]], stake)
    _nothing_written(customer)


def test_kicked_off_or_started_fixture_is_refused(customer):
    fixture, ids = fixture_with_markets()
    Fixture.objects.filter(pk=fixture.pk).update(kickoff=timezone.now() - timedelta(minutes=1))
    with pytest.raises(TicketRefused, match="already started"):
        place(customer, [ids["Home"]])
    Fixture.objects.filter(pk=fixture.pk).update(
        kickoff=timezone.now() + timedelta(hours=1), status="1H"
    )
    with pytest.raises(TicketRefused, match="already started"):
        place(customer, [ids["Home"]])
    Fixture.objects.filter(pk=fixture.pk).update(status="TBD")
    assert place(customer, [ids["Home"]]).pk


def test_inactive_missing_duplicate_empty_and_unsupported_selections(customer):
    fixture, ids = fixture_with_markets()
    Outcome.objects.filter(pk=ids["Draw"]).update(active=False)
    with pytest.raises(TicketRefused, match="no longer available"):
        place(customer, [ids["Draw"]])
    with pytest.raises(TicketRefused, match="does not exist"):
        place(customer, [999_999_999])
    with pytest.raises(TicketRefused, match="twice"):
        place(customer, [ids["Home"], ids["Home"]])
    with pytest.raises(TicketRefused, match="at least one"):
        place(customer, [])
    with pytest.raises(TicketRefused, match="not a selection"):
        place(customer, ["x"])
    corners = make_market(fixture, "Corners Over Under", {"Over 9.5": "1.8"})
    with pytest.raises(TicketRefused, match="cannot be bet on"):
        place(customer, [corners.outcomes.get().pk])
    _nothing_written(customer)


def test_a_contact_without_a_wallet_gets_a_clear_refusal(settings):
    settings.SANDBOX = False
    contact = new_contact()
    _, ids = fixture_with_markets()
    with pytest.raises(TicketRefused, match=r"balance is 0\.00"):
        place(contact, [ids["Home"]], "1")
    assert not BetTicket.objects.exists()


def test_odds_refresh_and_deactivation_leave_placed_legs_untouched(customer):
    _, ids = fixture_with_markets()
    ticket = place(customer, [ids["Over 2.5"]], "10")
    Outcome.objects.filter(pk=ids["Over 2.5"]).update(odds=Decimal("1.40"), active=False)
    leg = BetLeg.objects.get(ticket=ticket)
    assert (leg.odds, leg.label, leg.line) == (Decimal("1.900"), "Over 2.5", Decimal("2.50"))
    assert potential_return(ticket) == Decimal("19.00")


def test_placement_is_atomic_when_the_stake_fails(customer, monkeypatch):
    _, ids = fixture_with_markets()
    from football_data_app.services import tickets as tickets_module

    def boom(**kwargs):
        raise RuntimeError("ledger down")

    monkeypatch.setattr(tickets_module, "wallet_stake", boom)
    with pytest.raises(RuntimeError):
        ticket_place(contact=customer, selections=[ids["Home"]], stake="5")
    _nothing_written(customer)
