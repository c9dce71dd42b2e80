"""Simulated customers bet through WhatsApp, then the command watches their tickets settle.

    manage.py simulate_bets --customers 6 --wait-settlement 400

Against a running `make run`: every customer walks the demo football flow over the real signed
webhook and places a single; every second customer also an accumulator of two legs on two
different fixtures. Fixtures are picked from the list message the bot sent (read back from the
Graph sandbox), among those kicking off at least --min-lead seconds from now. Each ticket is
printed as the bot confirmed it. Then, unless --wait-settlement 0, the tickets are polled in
the database until settled and their settlement messages are looked for in the sandbox's sent
list; last, every wallet's balance is reconciled against its ledger. Exit code 1 when a ticket
was not confirmed, was not settled or notified in time, or a ledger does not add up.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Sum
from requests.adapters import HTTPAdapter

from football_data_app import simulation
from football_data_app.models import (
    BetTicket,
    LedgerEntry,
    LedgerKind,
    TicketStatus,
    Wallet,
)
from football_data_app.services.wallet import wallet_reconcile, wallets_out_of_balance
from meta_integration.simulation import make_users

FINAL = (TicketStatus.WON, TicketStatus.LOST, TicketStatus.VOID)


def _default_web() -> str:
    return settings.META_SANDBOX_WEBHOOK_URL.split("/webhooks/")[0]


class Command(BaseCommand):
    help = "Simulated customers place football bets over WhatsApp; report settlement."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=4)
        parser.add_argument("--web", default=_default_web(), help="base URL of the web process")
        parser.add_argument(
            "--sandbox",
            default=f"http://{settings.META_SANDBOX_HOST}:{settings.META_SANDBOX_PORT}",
            help="base URL of the Graph sandbox",
        )
        parser.add_argument(
            "--wait-settlement",
            type=float,
            default=300.0,
            help="seconds to wait for settlement and notices (0: do not wait)",
        )
        parser.add_argument(
            "--min-lead",
            type=float,
            default=45.0,
            help="bet only on fixtures kicking off at least this many seconds from now",
        )
        parser.add_argument(
            "--max-lead",
            type=float,
            default=None,
            help="prefer fixtures kicking off within this many seconds (default: what can "
            "finish within --wait-settlement, assuming ~4 minutes from kick-off to settlement)",
        )
        parser.add_argument("--step-timeout", type=float, default=30.0)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["customers"] < 1:
            self.stderr.write("--customers must be at least 1")
            raise SystemExit(2)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.sandbox_url = options["sandbox"].rstrip("/")
        tickets = self.place(options)
        confirmed = [t for t in tickets if t.ticket_id is not None]
        failed = len(tickets) - len(confirmed)
        wait = options["wait_settlement"]
        if wait > 0 and confirmed:
            self.wait_settled(confirmed, wait)
        ok = self.report(confirmed, waited=wait > 0) and not failed
        if failed:
            self.stderr.write(f"{failed} ticket(s) not confirmed by the bot")
        if not ok:
            raise SystemExit(1)

    # --- bets -----------------------------------------------------------------------------
    def place(self, options: dict[str, Any]) -> list[simulation.Ticket]:
        rng = random.Random(options["seed"])
        users = make_users(options["customers"], rng)
        numbers = {
            "waba_id": settings.META_WABA_ID,
            "phone_number_id": settings.META_PHONE_NUMBER_ID,
            "display_phone_number": settings.META_DISPLAY_PHONE_NUMBER,
        }
        webhook_url = options["web"].rstrip("/") + "/webhooks/whatsapp/"
        max_lead = options["max_lead"]
        if max_lead is None and options["wait_settlement"] > 0:
            # The sandbox plays a match in 105-150 s; scores are polled every ~20 s.
            max_lead = max(options["min_lead"] + 60, options["wait_settlement"] - 240)

        def customer(index: int) -> list[simulation.Ticket]:
            chat = simulation.Chat(
                user=users[index],
                session=self.session,
                webhook_url=webhook_url,
                sandbox_url=self.sandbox_url,
                secret=settings.META_APP_SECRET,
                numbers=numbers,
                rng=random.Random(rng.random() if options["seed"] is not None else None),
                step_timeout=options["step_timeout"],
            )
            lead = simulation.Lead(options["min_lead"], max_lead)
            done = [
                simulation.bet_with_retry(chat, kind="single", index=index, stake="5", lead=lead)
            ]
            if index % 2 == 1:
                done.append(
                    simulation.bet_with_retry(
                        chat, kind="accumulator", index=index, stake="3", lead=lead
                    )
                )
            return done

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=min(len(users), 8)) as pool:
            results = list(pool.map(customer, range(len(users))))
        tickets = [t for per_customer in results for t in per_customer]
        self.stdout.write(
            f"{len(users)} customers, {len(tickets)} tickets asked for in "
            f"{time.monotonic() - started:.1f}s"
        )
        for ticket in tickets:
            legs = " + ".join(ticket.fixtures)
            if ticket.ticket_id is None:
                self.stdout.write(f"✗ {ticket.wa_id} {ticket.kind}: NOT CONFIRMED ({ticket.error})")
                continue
            self.stdout.write(f"{ticket.wa_id} {ticket.kind} on {legs}:")
            for line in ticket.confirmation.splitlines():
                self.stdout.write(f"    {line}")
        return tickets

    # --- settlement ----------------------------------------------------------------------
    def _sent_to(self, wa_id: str) -> list[dict[str, Any]]:
        try:
            response = self.session.get(
                f"{self.sandbox_url}/sandbox/meta/sent", params={"to": wa_id}, timeout=10
            )
            return response.json().get("messages", [])
        except (requests.RequestException, ValueError) as exc:
            self.stderr.write(f"sandbox poll failed: {exc}")
            return []

    def _notified(self, tickets: list[simulation.Ticket]) -> set[int]:
        found: set[int] = set()
        for wa_id in {t.wa_id for t in tickets}:
            sent = self._sent_to(wa_id)
            found |= {
                t.ticket_id
                for t in tickets
                if t.wa_id == wa_id and simulation.notified(t.ticket_id, sent)
            }
        return found

    def wait_settled(self, tickets: list[simulation.Ticket], seconds: float) -> None:
        ids = [t.ticket_id for t in tickets]
        self.stdout.write(f"waiting up to {seconds:.0f}s for {len(ids)} tickets to settle")
        deadline = time.monotonic() + seconds
        last_line = ""
        while True:
            settled = BetTicket.objects.filter(pk__in=ids, status__in=FINAL).count()
            notified = len(self._notified(tickets))
            line = f"  settled {settled}/{len(ids)}, notified {notified}/{len(ids)}"
            if line != last_line:
                self.stdout.write(line)
                last_line = line
            if (settled == notified == len(ids)) or time.monotonic() > deadline:
                return
            time.sleep(3)

    def report(self, tickets: list[simulation.Ticket], *, waited: bool) -> bool:
        by_id = {t.pk: t for t in BetTicket.objects.filter(pk__in=[t.ticket_id for t in tickets])}
        credited = dict(
            LedgerEntry.objects.filter(
                ticket_id__in=by_id, kind__in=[LedgerKind.PAYOUT, LedgerKind.REFUND]
            )
            .order_by()
            .values_list("ticket_id")
            .annotate(total=Sum("amount"))
        )
        notified = self._notified(tickets)
        counts = dict.fromkeys(FINAL, 0)
        ledger_ok = True
        for ticket in tickets:
            row = by_id[ticket.ticket_id]
            paid = credited.get(row.pk, Decimal("0"))
            expected = (row.payout or Decimal("0")) if row.status in FINAL else Decimal("0")
            # The ledger holds exactly the payout (won), the refund (void), nothing (lost).
            ticket_ledger_ok = paid == expected
            ledger_ok &= ticket_ledger_ok
            if row.status in FINAL:
                counts[row.status] += 1
            payout = "-" if row.payout is None else f"{row.payout:.2f}"
            self.stdout.write(
                f"#{row.pk} {row.kind} {ticket.wa_id}: {row.status} payout={payout} "
                f"ledger={paid:.2f}{'' if ticket_ledger_ok else ' MISMATCH'} "
                f"notified={'yes' if row.pk in notified else 'no'}"
            )
        wallets = Wallet.objects.filter(contact__wa_id__in={t.wa_id for t in tickets})
        for wallet in wallets:
            check = wallet_reconcile(wallet_id=wallet.pk)
            if not check.ok:
                ledger_ok = False
                self.stdout.write(
                    f"wallet {wallet.pk}: balance {check.balance} != ledger {check.ledger_sum}"
                )
        for check in wallets_out_of_balance():  # any wallet at all, not only ours
            ledger_ok = False
            self.stdout.write(
                f"wallet {check.wallet_id}: balance {check.balance} != ledger {check.ledger_sum}"
            )
        settled = sum(counts.values())
        self.stdout.write(
            f"tickets={len(tickets)} settled={settled} won={counts[TicketStatus.WON]} "
            f"lost={counts[TicketStatus.LOST]} void={counts[TicketStatus.VOID]} "
            f"notified={len(notified)} ledger_ok={ledger_ok}"
        )
        if not waited:
            return ledger_ok
        return ledger_ok and settled == len(tickets) and len(notified) == len(tickets)
