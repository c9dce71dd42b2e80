"""simulate_bets: its pure parts, then the command against a live stack.

The stack is real: the web process (live server) takes the signed webhooks, a real Celery
worker runs the demo flow and sends through the Graph sandbox over HTTP, a football worker
runs the settlement pipeline once the test finishes the fixtures.
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from football_data_app import simulation
from football_data_app.models import BetLeg, BetTicket, LedgerEntry, Wallet
from meta_integration.sandbox import make_server
from tests.conftest import wait_for

NOW = datetime(2026, 12, 2, 15, 0, 30, tzinfo=UTC)


# --- pure parts -----------------------------------------------------------------------------
def test_a_row_description_gives_the_kickoff_in_utc_across_new_year():
    assert simulation.row_kickoff("Wed 02 Dec 15:10 · 1X2 2.00 / 3.20 / 3.50", NOW) == datetime(
        2026, 12, 2, 15, 10, tzinfo=UTC
    )
    new_year = datetime(2026, 12, 31, 23, 50, tzinfo=UTC)
    assert simulation.row_kickoff("Fri 01 Jan 00:05 · 1X2", new_year) == datetime(
        2027, 1, 1, 0, 5, tzinfo=UTC
    )
    assert simulation.row_kickoff("no date here", NOW) is None


def _row(row_id: str, title: str, minutes: float) -> simulation.FixtureRow:
    return simulation.FixtureRow(row_id, title, NOW + timedelta(minutes=minutes))


def test_choose_skips_fixtures_kicking_off_too_soon_and_excluded_ones():
    rows = [_row("1", "A v B", 0.5), _row("2", "C v D", 2), _row("3", "E v F", 3)]
    rows.append(_row("4", "G v H", 4))
    rows.append(_row("5", "I v J", 60))
    pick = simulation.choose
    assert pick(rows, now=NOW, min_lead=45, index=0).row_id == "2"
    assert [pick(rows, now=NOW, min_lead=45, index=i).row_id for i in range(4)] == list("2342")
    assert pick(rows, now=NOW, min_lead=45, index=0, exclude=["C v D"]).row_id == "3"
    assert pick(rows, now=NOW, min_lead=3600 * 2, index=0) is None
    # Only what kicks off soon enough to be settled while the run waits...
    assert [pick(rows, now=NOW, min_lead=45, max_lead=200, index=i).row_id for i in range(3)] == [
        "2",
        "3",
        "2",
    ]
    # ...unless nothing does: then the soonest later one.
    assert pick(rows, now=NOW, min_lead=45, max_lead=60, index=1).row_id == "2"
    assert (
        pick(rows, now=NOW, min_lead=45, max_lead=150, index=0, exclude=["C v D", "E v F"])
        == (rows[3])
    )


def test_the_confirmation_and_the_settlement_notice_are_recognised():
    text = "✅ Ticket #42 placed (accumulator), stake 3.00.\n• Home @ 2.00\nPotential return: 6.00."
    assert simulation.confirmation(text) == (42, "accumulator")
    assert simulation.confirmation("❌ Not placed: the fixture has kicked off.") is None
    sent = [{"biz_opaque_callback_data": "ticket:42:settled"}, {"biz_opaque_callback_data": "x:0"}]
    assert simulation.notified(42, sent) and not simulation.notified(4, sent)


def test_views_of_text_buttons_lists_and_templates():
    listing = {
        "payload": {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick a fixture"},
                "action": {
                    "button": "Fixtures",
                    "sections": [
                        {
                            "title": "Soonest first",
                            "rows": [
                                {"id": "1", "title": "A v B", "description": "Wed 02 Dec 15:10"},
                                {"id": "2", "title": "C v D", "description": "Wed 02 Dec 15:20"},
                            ],
                        }
                    ],
                },
            },
        }
    }
    view = simulation.view(listing)
    assert view.text == "Pick a fixture"
    assert [r.row_id for r in simulation.fixture_rows([view], NOW)] == ["1", "2"]
    template = {
        "payload": {
            "type": "template",
            "template": {
                "name": "ticket_settled",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "7"}]}],
            },
        }
    }
    assert simulation.view(template).text == "[template ticket_settled] 7"


# --- the command against a live stack ------------------------------------------------------
@pytest.fixture
def graph_sandbox(live_server):
    server = make_server(
        "127.0.0.1", 0, webhook_url=f"{live_server.url}/webhooks/whatsapp/", callback_delay_ms=20
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def stack(celery_worker_factory, live_server, graph_sandbox):
    """Demo numbers and flows loaded; a chat worker and a football worker running."""
    from flows.demo import load_demo as load_flows
    from meta_integration.demo import load_demo as load_numbers

    load_numbers()
    load_flows()
    sandbox_url = f"http://127.0.0.1:{graph_sandbox.server_port}"
    celery_worker_factory(
        queues="celery,bulk", concurrency=2, env={"META_GRAPH_BASE_URL": sandbox_url}
    )
    return {"web": live_server.url, "sandbox": sandbox_url}


def _finish_when_placed(
    count: int, fixtures: list, scores: list[tuple[int, int]]
) -> threading.Thread:
    """Once `count` tickets exist, the fixtures end and the settlement pipeline runs."""
    from tests.football_data_app.betting_factories import finish
    from whatsappcrm_backend.celery import app

    def run() -> None:
        try:
            wait_for(lambda: BetTicket.objects.count() >= count, timeout=180, interval=0.5)
            for fixture, (home, away) in zip(fixtures, scores, strict=True):
                finish(fixture, home, away)
                app.send_task("settle_fixture_pipeline_task", args=[fixture.pk])
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.worker
def test_customers_bet_through_the_webhook_and_see_their_tickets_settled(
    stack, celery_worker_factory
):
    from tests.football_data_app.betting_factories import fixture_with_markets

    first, _ = fixture_with_markets()
    second, _ = fixture_with_markets()
    celery_worker_factory(queues="football_data", concurrency=1)
    finisher = _finish_when_placed(3, [first, second], [(2, 0), (1, 1)])
    out = io.StringIO()
    call_command(
        "simulate_bets",
        customers=2,
        web=stack["web"],
        sandbox=stack["sandbox"],
        wait_settlement=120,
        min_lead=0,
        seed=3,
        stdout=out,
        stderr=io.StringIO(),
    )
    finisher.join(timeout=5)
    report = out.getvalue()

    tickets = list(BetTicket.objects.order_by("pk"))
    assert sorted(t.kind for t in tickets) == ["accumulator", "single", "single"]
    for ticket in tickets:  # each printed as the bot confirmed it
        assert f"✅ Ticket #{ticket.pk} placed ({ticket.kind}), stake {ticket.stake:.2f}." in report
    [acca] = [t for t in tickets if t.kind == "accumulator"]
    assert len({leg.fixture_id for leg in acca.legs.all()}) == 2

    # Settled with the right payouts: a won ticket pays stake x the agreed odds, once.
    for ticket in tickets:
        legs = list(BetLeg.objects.filter(ticket=ticket))
        if ticket.status == "won":
            product = Decimal("1")
            for leg in legs:
                product *= leg.odds
            assert ticket.payout == (ticket.stake * product).quantize(Decimal("0.01"))
        else:
            assert ticket.status == "lost" and not ticket.payout
        paid = LedgerEntry.objects.filter(ticket=ticket, kind="payout")
        assert sum(e.amount for e in paid) == (ticket.payout or 0)
        line = f"#{ticket.pk} {ticket.kind} {ticket.contact.wa_id}: {ticket.status}"
        assert line in report and "notified=yes" in report.split(line)[1].splitlines()[0]
    for wallet in Wallet.objects.all():
        assert wallet.balance == sum(e.amount for e in wallet.entries.all())
    won = sum(t.status == "won" for t in tickets)
    assert f"tickets=3 settled=3 won={won} lost={3 - won} void=0 notified=3 ledger_ok=True" in (
        report
    )


@pytest.mark.worker
def test_a_ticket_the_bot_does_not_confirm_fails_the_run(stack):
    # No fixture has odds: the bot answers "No fixtures with odds right now".
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "simulate_bets",
            customers=1,
            web=stack["web"],
            sandbox=stack["sandbox"],
            wait_settlement=0,
            stdout=out,
            stderr=io.StringIO(),
        )
    assert exit_info.value.code == 1
    assert "single: NOT CONFIRMED (" in out.getvalue() and "No fixtures" in out.getvalue()
    assert not BetTicket.objects.exists()
