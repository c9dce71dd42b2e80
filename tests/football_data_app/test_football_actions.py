"""The football flow actions, walked through the demo menu as the flow task runs them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flows import cache
from flows.actions import registered_actions
from flows.demo import load_demo
from flows.services import contact_messages_process
from football_data_app.models import BetTicket, Outcome, Wallet
from meta_integration.models import OutboundMessage
from tests.factories import make_inbound
from tests.flows.conftest import replies_to, reply_texts
from tests.football_data_app.betting_factories import fixture_with_markets, new_contact

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_definitions(redis_conn):
    cache.clear_local()
    yield
    cache.clear_local()


@pytest.fixture
def say(db):
    """Insert one inbound message and process the contact as the flow task does."""

    def send(contact, text: str = "", *, reply_id: str = ""):
        kind = "interactive" if reply_id else "text"
        inbound = make_inbound(contact, text, message_type=kind, reply_id=reply_id)
        contact_messages_process(contact_id=contact.pk)
        inbound.refresh_from_db()
        return inbound

    return send


@pytest.fixture
def demo(settings):
    settings.SANDBOX = True
    settings.FOOTBALL_SANDBOX_WELCOME_DEPOSIT = "100.00"
    return load_demo()


def test_actions_are_registered():
    names = set(registered_actions())
    assert {
        "football.fixtures",
        "football.fixture",
        "football.pick",
        "football.slip_add",
        "football.place_bet",
        "football.my_tickets",
        "football.balance",
    } <= names


def open_fixtures(say, contact) -> list[OutboundMessage]:
    say(contact, "hi")
    say(contact, "Football", reply_id="football")
    return replies_to(say(contact, "Fixtures", reply_id="fixtures"))


def test_single_bet_through_the_demo_menu(demo, say):
    fixture, ids = fixture_with_markets()
    contact = new_contact()
    listing, hint = open_fixtures(say, contact)
    rows = listing.payload["interactive"]["action"]["sections"][0]["rows"]
    assert rows[0]["id"] == "1" and rows[0]["title"].startswith(fixture.home_team.name)
    assert rows[0]["description"].endswith("1X2 2.00 / 3.20 / 3.50")
    assert hint.text.startswith("Tap a fixture")

    [odds] = replies_to(say(contact, rows[0]["title"], reply_id=rows[0]["id"]))
    assert odds.text.endswith("Home 2.00 · Draw 3.20 · Away 3.50")
    [choice] = reply_texts(say(contact, "Home", reply_id="home"))
    assert choice.endswith(": Home @ 2.00\nYour balance: 100.00 USD.")
    assert reply_texts(say(contact, "Bet on this", reply_id="single")) == [
        "How much do you want to stake? (e.g. 5 or 2.50)"
    ]
    [placed] = reply_texts(say(contact, "5"))
    ticket = BetTicket.objects.get(contact=contact)
    assert placed.startswith(f"✅ Ticket #{ticket.pk} placed (single), stake 5.00.")
    assert "Potential return: 10.00." in placed and "Balance: 95.00 USD." in placed
    leg = ticket.legs.get()
    assert (leg.outcome_id, leg.odds) == (ids["Home"], Decimal("2.000"))


def test_accumulator_through_the_slip(demo, say):
    fixture_with_markets()
    fixture_with_markets()
    contact = new_contact()
    open_fixtures(say, contact)
    say(contact, "1")  # typed position in the list
    say(contact, "Home", reply_id="home")
    [slip] = reply_texts(say(contact, "Add to slip", reply_id="slip"))
    assert slip.startswith("1. ") and slip.endswith("Combined odds: 2.00")
    [listing, _] = replies_to(say(contact, "Add another", reply_id="more"))
    rows = listing.payload["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == ["1", "2"]
    say(contact, rows[1]["title"], reply_id="2")
    say(contact, "Away", reply_id="away")
    [slip] = reply_texts(say(contact, "Add to slip", reply_id="slip"))
    assert slip.endswith("Combined odds: 7.00")
    say(contact, "Place accumulator", reply_id="place")
    [placed] = reply_texts(say(contact, "10"))
    ticket = BetTicket.objects.get(contact=contact)
    assert ticket.kind == "accumulator" and ticket.legs.count() == 2
    assert "Potential return: 70.00." in placed
    assert Wallet.objects.get(contact=contact).balance == Decimal("90.00")


def test_refusal_is_told_to_the_customer(demo, say):
    fixture_with_markets()
    contact = new_contact()
    open_fixtures(say, contact)
    say(contact, "1")
    say(contact, "Draw", reply_id="draw")
    say(contact, "Bet on this", reply_id="single")
    [refused] = reply_texts(say(contact, "500"))
    assert refused.startswith("❌ Not placed: Your balance is 100.00; the stake is 500.00.")
    assert not BetTicket.objects.exists()


def test_a_pick_withdrawn_meanwhile_is_not_available(demo, say):
    _, ids = fixture_with_markets()
    contact = new_contact()
    open_fixtures(say, contact)
    say(contact, "1")
    Outcome.objects.filter(pk=ids["Home"]).update(active=False)
    assert reply_texts(say(contact, "Home", reply_id="home")) == [
        'Sorry, that is no longer available. Send "menu" any time to see the options again.'
    ]


def test_no_fixtures(demo, say):
    contact = new_contact()
    assert reply_texts(say(contact, "hi")) and [m.text for m in open_fixtures(say, contact)] == [
        'No fixtures with odds right now. Send "menu" any time to see the options again.'
    ]


def test_balance_and_my_tickets(demo, say):
    _, ids = fixture_with_markets()
    contact = new_contact()
    say(contact, "hi")
    say(contact, "Football", reply_id="football")
    assert reply_texts(say(contact, "My balance", reply_id="balance")) == [
        '💰 Your balance: 100.00 USD. Send "menu" any time to see the options again.'
    ]
    from football_data_app.services.tickets import ticket_place

    ticket = ticket_place(contact=contact, selections=[ids["Over 2.5"]], stake="4")
    say(contact, "menu")
    say(contact, "Football", reply_id="football")
    [tickets] = reply_texts(say(contact, "My tickets", reply_id="tickets"))
    assert tickets.startswith("🎟️ Open tickets: 1\n")
    assert f"#{ticket.pk} placed: stake 4.00 · Over 2.5 @ 1.90" in tickets
