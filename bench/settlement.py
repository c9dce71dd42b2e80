"""Settlement of many tickets on one fixture: batched service vs a naive one-ticket ORM loop.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/settlement.py --tickets 100000 [--naive 2000] [--batch-size 1000]

Creates its own PostgreSQL database next to the one DATABASE_URL names (same server), migrates
it, fills it with bulk inserts (contacts, funded wallets with their deposit entries, single
tickets with their stake entries, legs on one finished fixture), runs ANALYZE, then:

- batched: `fixture_settle_tickets` (the production path, without notifications) over all
  `--tickets` tickets, with the queries of every batch counted;
- naive: per ticket, its own transaction: lock the ticket, read its legs, decide, save the
  ticket, create the ledger entry, update the wallet. Run on `--naive` tickets of a second
  fixture and extrapolated to `--tickets` (said so in the output).

The database is dropped at the end, whatever happens. Works on SQLite too (a temp file) for a
smoke run, but the figures that count are PostgreSQL's.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LABELS = ("Home", "Draw", "Away")
ODDS = {"Home": Decimal("2.10"), "Draw": Decimal("3.20"), "Away": Decimal("3.50")}


def _admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = f"wcrm_bench_settlement_{os.getpid()}"
    return urlunsplit(parts._replace(path="/postgres")), urlunsplit(parts._replace(path=f"/{name}"))


def _psql(admin_url: str, sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
    connection.close()


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsappcrm_backend.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_fixture(label: str):
    from django.utils import timezone

    from football_data_app.models import BetType, Bookmaker, Fixture, League, Market, Outcome, Team

    league, _ = League.objects.get_or_create(api_id=1, season=2026, defaults={"name": "Bench"})
    home = Team.objects.create(api_id=abs(hash(label + "h")) % 10**9, name=f"{label} H")
    away = Team.objects.create(api_id=abs(hash(label + "a")) % 10**9, name=f"{label} A")
    fixture = Fixture.objects.create(
        api_id=abs(hash(label)) % 10**9,
        league=league,
        home_team=home,
        away_team=away,
        kickoff=timezone.now() + timezone.timedelta(days=1),
    )
    bookmaker, _ = Bookmaker.objects.get_or_create(api_id=8, defaults={"name": "Bet365"})
    bet_type, _ = BetType.objects.get_or_create(api_id=1, defaults={"name": "Match Winner"})
    market = Market.objects.create(fixture=fixture, bookmaker=bookmaker, bet_type=bet_type)
    Outcome.objects.bulk_create(
        Outcome(market=market, label=label, odds=odds) for label, odds in ODDS.items()
    )
    return fixture, {o.label: o for o in market.outcomes.all()}


def fill(fixture, outcomes, count: int, prefix: str, chunk: int = 5000) -> None:
    """`count` contacts, each with a funded wallet and one single ticket on `fixture`."""
    from football_data_app.models import BetLeg, BetTicket, LedgerEntry, Wallet
    from meta_integration.models import Contact

    stake = Decimal("10.00")
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        contacts = Contact.objects.bulk_create(
            Contact(wa_id=f"{prefix}{start + i:09d}") for i in range(size)
        )
        wallets = Wallet.objects.bulk_create(
            Wallet(contact=c, balance=Decimal("90.00")) for c in contacts
        )
        tickets = BetTicket.objects.bulk_create(
            BetTicket(contact=c, kind="single", stake=stake) for c in contacts
        )
        legs = []
        entries = []
        for i, (wallet, ticket) in enumerate(zip(wallets, tickets, strict=True)):
            outcome = outcomes[LABELS[(start + i) % 3]]
            legs.append(
                BetLeg(
                    ticket=ticket,
                    outcome=outcome,
                    fixture=fixture,
                    odds=outcome.odds,
                    label=outcome.label,
                    bet_type_name="Match Winner",
                )
            )
            entries.append(LedgerEntry(wallet=wallet, kind="deposit", amount=Decimal("100.00")))
            entries.append(LedgerEntry(wallet=wallet, kind="stake", amount=-stake, ticket=ticket))
        BetLeg.objects.bulk_create(legs)
        LedgerEntry.objects.bulk_create(entries)


def finish(fixture) -> None:
    from football_data_app.models import Fixture
    from football_data_app.services.settlement import fixture_settle_legs, fixture_settle_outcomes

    Fixture.objects.filter(pk=fixture.pk).update(
        status="FT", fulltime_home=2, fulltime_away=1, goals_home=2, goals_away=1
    )
    fixture_settle_outcomes(fixture_id=fixture.pk)
    fixture_settle_legs(fixture_id=fixture.pk)


def batched(fixture, batch_size: int) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from football_data_app.services import settlement as service

    per_batch: list[int] = []
    last_id = 0
    settled = 0
    started = time.perf_counter()
    while True:
        with CaptureQueriesContext(connection) as queries:
            result = service.tickets_settle_batch(
                candidates=service.fixture_tickets(fixture.pk).filter(pk__gt=last_id),
                batch_size=batch_size,
                notify=False,
            )
        if not result.examined:
            break
        per_batch.append(len(queries))
        settled += len(result.settled)
        last_id = result.last_id
    seconds = time.perf_counter() - started
    return {"settled": settled, "seconds": seconds, "queries": per_batch}


def naive(fixture) -> dict[str, float]:
    """What a straightforward ORM loop does: one ticket, one transaction, ~7 queries."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from football_data_app import settlement as rules
    from football_data_app.models import BetTicket, LedgerEntry, Wallet

    ids = list(
        BetTicket.objects.filter(legs__fixture=fixture, status="placed").values_list(
            "pk", flat=True
        )
    )
    started = time.perf_counter()
    settled = 0
    for ticket_id in ids:
        with transaction.atomic():
            ticket = BetTicket.objects.select_for_update().get(pk=ticket_id)
            if ticket.status != "placed":
                continue
            legs = [(leg.odds, leg.result or None) for leg in ticket.legs.all()]
            verdict = rules.ticket_verdict(stake=ticket.stake, legs=legs)
            if not verdict.decided:
                continue
            ticket.status, ticket.payout = verdict.status, verdict.payout
            ticket.settled_at = timezone.now()
            ticket.save(update_fields=["status", "payout", "settled_at"])
            if verdict.payout:
                wallet = Wallet.objects.get(contact_id=ticket.contact_id)
                kind = "refund" if verdict.is_refund else "payout"
                LedgerEntry.objects.create(
                    wallet=wallet, kind=kind, amount=verdict.payout, ticket=ticket
                )
                Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") + verdict.payout)
            settled += 1
    return {"settled": settled, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=2_000, help="tickets for the naive loop")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    configured = os.environ.get("DATABASE_URL", "")
    postgres = configured.startswith(("postgres://", "postgresql://"))
    if postgres:
        admin_url, database_url = _admin_url(configured)
        name = urlsplit(database_url).path.lstrip("/")
        _psql(admin_url, f'CREATE DATABASE "{name}"')
    else:
        print("DATABASE_URL is not PostgreSQL: a SQLite smoke run (figures do not count)")
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='wcrm-bench-')}/settlement.sqlite3"
    try:
        setup_django(database_url)
        run(args, postgres)
    finally:
        if postgres:
            from django.db import connections

            connections.close_all()
            _psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace, postgres: bool) -> None:
    from football_data_app.models import LedgerEntry
    from football_data_app.services.wallet import wallets_out_of_balance

    started = time.perf_counter()
    big, big_outcomes = make_fixture("batched")
    fill(big, big_outcomes, args.tickets, "1")
    small, small_outcomes = make_fixture("naive")
    fill(small, small_outcomes, args.naive, "2")
    finish(big)
    finish(small)
    # Fresh bulk-loaded tables have no planner statistics yet; a live database has them
    # (autovacuum). Without them PostgreSQL sorts every open ticket for each batch.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"setup: {args.tickets} + {args.naive} tickets in {time.perf_counter() - started:.1f} s "
        f"({'PostgreSQL' if postgres else 'SQLite'})"
    )

    fast = batched(big, args.batch_size)
    queries = fast["queries"]
    fast_rate = fast["settled"] / fast["seconds"]
    print(
        f"batched: {fast['settled']} tickets in {fast['seconds']:.2f} s = {fast_rate:,.0f} tickets/s"
        f"; {len(queries)} batches of {args.batch_size}, queries per batch "
        f"min {min(queries)} max {max(queries)}"
    )
    slow = naive(small)
    slow_rate = slow["settled"] / slow["seconds"]
    extrapolated = args.tickets / slow_rate
    print(
        f"naive one-ticket-at-a-time: {slow['settled']} tickets in {slow['seconds']:.2f} s = "
        f"{slow_rate:,.0f} tickets/s; extrapolated to {args.tickets}: {extrapolated:.0f} s"
    )
    print(f"speed-up: {fast_rate / slow_rate:.1f}x (goal >= 10x)")
    assert wallets_out_of_balance() == [], "balance != ledger sum"
    payouts = LedgerEntry.objects.filter(kind="payout").count()
    print(f"invariant: every wallet's balance equals its ledger sum; {payouts} payouts")


if __name__ == "__main__":
    main()
