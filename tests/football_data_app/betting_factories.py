"""Betting helpers of F-BET's tests (wallets, tickets, finished fixtures)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from football_data_app.models import Fixture, Wallet
from football_data_app.services.tickets import ticket_place
from football_data_app.services.wallet import wallet_deposit
from meta_integration.models import Contact
from tests.factories import make_contact
from tests.football_data_app.factories import make_1x2, make_fixture, make_market

_phones = iter(range(16_505_550_000, 16_505_999_999))


def new_contact(**fields: Any) -> Contact:
    return make_contact(wa_id=str(next(_phones)), **fields)


def funded_wallet(contact: Contact | None = None, amount: str = "100.00") -> Wallet:
    wallet, _ = Wallet.objects.get_or_create(contact=contact or new_contact())
    if Decimal(amount) > 0:
        wallet_deposit(wallet=wallet, amount=amount, note="test")
    wallet.refresh_from_db()
    return wallet


def fixture_with_markets() -> tuple[Fixture, dict[str, int]]:
    """A fixture with 1X2, O/U 2.5 and 2.25, and AH -0.75 markets; label -> outcome id."""
    fixture = make_fixture()
    markets = [
        make_1x2(fixture, home="2.00", draw="3.20", away="3.50"),
        make_market(fixture, "Goals Over/Under", {"Over 2.5": "1.90", "Under 2.5": "1.95"}),
        make_market(fixture, "Asian Handicap", {"Home -0.75": "1.90", "Away +0.75": "1.95"}),
        make_market(fixture, "Both Teams Score", {"Yes": "1.80", "No": "2.00"}),
    ]
    ids = {o.label: o.pk for m in markets for o in m.outcomes.all()}
    return fixture, ids


def place(contact: Contact, outcome_ids: list[int], stake: str = "10.00"):
    return ticket_place(contact=contact, selections=outcome_ids, stake=stake)


def finish(fixture: Fixture, home: int, away: int, status: str = "FT", **extra: Any) -> Fixture:
    fields = {
        "status": status,
        "fulltime_home": home,
        "fulltime_away": away,
        "goals_home": home,
        "goals_away": away,
        **extra,
    }
    Fixture.objects.filter(pk=fixture.pk).update(**fields)
    fixture.refresh_from_db()
    return fixture
