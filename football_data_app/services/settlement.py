"""Settlement services: outcomes, legs, then tickets in batches, each payout exactly once.

Order for one fixture (the pipeline task chains them): outcomes (Outcome.result, for the admin
and the odds pages), legs (each from its own agreed label and line), tickets.

Tickets settle in batches. A batch locks its ticket rows with `select_for_update(skip_locked)`
on PostgreSQL (another worker takes the next rows instead of waiting), reads the batch's legs in
one query, decides each ticket with the pure rules, then writes with a constant number of
statements: one UPDATE of the tickets (claimed: only rows still open), one INSERT of the ledger
entries (unique per (ticket, kind)), one UPDATE of the wallets (`F()` + a CASE of credits).
A settled ticket is never selected again, so a redelivered task, a re-run pipeline or a second
worker finds nothing to do. SQLite runs with IMMEDIATE transactions (one writer at a time).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, DecimalField, Exists, F, OuterRef, QuerySet, Value, When
from django.utils import timezone

from football_data_app import settlement as rules
from football_data_app.models import (
    BetLeg,
    BetTicket,
    Fixture,
    LedgerEntry,
    LedgerKind,
    LegResult,
    Outcome,
    TicketStatus,
    Wallet,
)
from whatsappcrm_backend.instrumentation import instrumented
from whatsappcrm_backend.publishing import publish_on_commit

logger = logging.getLogger(__name__)

OPEN_STATUSES = (TicketStatus.PLACED, TicketStatus.PARTIALLY_SETTLED)
NOTIFY_TASK = "send_bet_ticket_settlement_notification_task"
SQLITE_MAX_BATCH = 150


class SettlementRace(RuntimeError):
    """A claimed ticket moved on under us (rolled back; the caller retries)."""


def fixture_verdict_of(fixture: Fixture, *, now: datetime | None = None) -> rules.Verdict:
    return rules.fixture_verdict(
        status=fixture.status,
        fulltime=(fixture.fulltime_home, fixture.fulltime_away),
        goals=(fixture.goals_home, fixture.goals_away),
        now=now or timezone.now(),
        kickoff=fixture.kickoff,
        postponed_at=fixture.postponed_at,
        void_not_played_on_pitch=settings.FOOTBALL_VOID_NOT_PLAYED_ON_PITCH,
        postponed_void_hours=settings.FOOTBALL_POSTPONED_VOID_HOURS,
    )


# --- outcomes and legs -------------------------------------------------------------------------
@transaction.atomic
def fixture_settle_outcomes(*, fixture_id: int, now: datetime | None = None) -> dict[str, object]:
    """Set Outcome.result for every outcome of a final fixture; mark the fixture settled."""
    now = now or timezone.now()
    fixture = Fixture.objects.get(pk=fixture_id)
    verdict = fixture_verdict_of(fixture, now=now)
    if verdict.action == "wait":
        return {"action": "wait", "reason": verdict.reason, "outcomes": 0}
    outcomes = Outcome.objects.filter(market__fixture_id=fixture_id)
    if verdict.action == "void":
        count = outcomes.update(result=LegResult.VOID)
    else:
        rows = list(outcomes.values_list("pk", "label", "line", "market__bet_type__name"))
        by_result: dict[str, list[int]] = defaultdict(list)
        for pk, label, line, bet_type_name in rows:
            try:
                result = rules.outcome_result(
                    bet_type_name=bet_type_name,
                    label=label,
                    line=line,
                    home=verdict.home,
                    away=verdict.away,
                )
            except rules.UnsupportedMarket:
                continue  # markets we do not take bets on keep no result
            by_result[result].append(pk)
        count = 0
        for result, pks in by_result.items():
            count += Outcome.objects.filter(pk__in=pks).update(result=result)
    Fixture.objects.filter(pk=fixture_id, outcomes_settled_at__isnull=True).update(
        outcomes_settled_at=now
    )
    return {"action": verdict.action, "reason": verdict.reason, "outcomes": count}


@transaction.atomic
def fixture_settle_legs(*, fixture_id: int, now: datetime | None = None) -> dict[str, object]:
    """Give every open leg on this fixture its result (or the reason it waits)."""
    now = now or timezone.now()
    fixture = Fixture.objects.get(pk=fixture_id)
    verdict = fixture_verdict_of(fixture, now=now)
    open_legs = BetLeg.objects.filter(fixture_id=fixture_id, result="")
    if verdict.action == "wait":
        waiting = open_legs.exclude(waiting_reason=verdict.reason[:200]).update(
            waiting_reason=verdict.reason[:200]
        )
        return {"action": "wait", "reason": verdict.reason, "legs": 0, "waiting": waiting}
    if verdict.action == "void":
        count = open_legs.update(result=LegResult.VOID, settled_at=now, waiting_reason="")
        return {"action": "void", "reason": verdict.reason, "legs": count}
    count = 0
    # One UPDATE per distinct selection (a handful per fixture), not per leg.
    groups = open_legs.values_list("bet_type_name", "label", "line").distinct()
    for bet_type_name, label, line in list(groups):
        same = open_legs.filter(bet_type_name=bet_type_name, label=label, line=line)
        try:
            result = rules.outcome_result(
                bet_type_name=bet_type_name,
                label=label,
                line=line,
                home=verdict.home,
                away=verdict.away,
            )
        except rules.UnsupportedMarket as exc:
            same.update(waiting_reason=str(exc)[:200])
            continue
        count += same.update(result=result, settled_at=now, waiting_reason="")
    return {"action": "settle", "reason": verdict.reason, "legs": count}


# --- tickets ----------------------------------------------------------------------------------
@dataclass
class BatchResult:
    examined: int = 0
    settled: list[int] = field(default_factory=list)
    partial: int = 0
    credited: Decimal = Decimal("0.00")
    last_id: int = 0


def batch_size_default() -> int:
    size = max(1, settings.FOOTBALL_SETTLEMENT_BATCH_SIZE)
    if connection.vendor == "sqlite":
        size = min(size, SQLITE_MAX_BATCH)
    return size


def _lock(qs: QuerySet[BetTicket]) -> QuerySet[BetTicket]:
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True, of=("self",))
    return qs.select_for_update()


@instrumented("settlement.tickets_batch", warn_ms=1000, error_ms=5000)
@transaction.atomic
def tickets_settle_batch(
    *,
    candidates: QuerySet[BetTicket],
    batch_size: int,
    now: datetime | None = None,
    notify: bool = True,
) -> BatchResult:
    """Settle up to `batch_size` open tickets of `candidates` (ordered by id).

    Queries: lock ids, legs, existing ledger rows, tickets UPDATE, ledger INSERT, wallets
    UPDATE — the same for 10 tickets or 500.
    """
    now = now or timezone.now()
    out = BatchResult()
    ids = list(
        _lock(candidates.filter(status__in=OPEN_STATUSES))
        .order_by("pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    if not ids:
        return out
    out.examined, out.last_id = len(ids), ids[-1]
    legs: dict[int, list[tuple[Decimal, str | None]]] = defaultdict(list)
    meta: dict[int, tuple[Decimal, str, int | None]] = {}
    rows = BetLeg.objects.filter(ticket_id__in=ids).values_list(
        "ticket_id", "odds", "result", "ticket__stake", "ticket__status", "ticket__contact__wallet"
    )
    for ticket_id, odds, result, stake, status, wallet_id in rows:
        legs[ticket_id].append((odds, result or None))
        meta[ticket_id] = (stake, status, wallet_id)

    statuses: dict[str, list[int]] = defaultdict(list)
    payouts: dict[int, Decimal] = {}
    decided: list[int] = []
    for ticket_id, ticket_legs in legs.items():
        stake, status, _ = meta[ticket_id]
        verdict = rules.ticket_verdict(stake=stake, legs=ticket_legs)
        if verdict.decided:
            decided.append(ticket_id)
            payouts[ticket_id] = verdict.payout
            statuses[verdict.status].append(ticket_id)
        elif verdict.status != status:
            statuses[verdict.status].append(ticket_id)
            out.partial += 1
    changed = [pk for pks in statuses.values() for pk in pks]
    if not changed:
        return out

    # Claim: only rows still open are updated; a short count means a race, so roll back.
    money = DecimalField(max_digits=14, decimal_places=2)
    updates = {
        "status": Case(*[When(pk__in=pks, then=Value(st)) for st, pks in statuses.items()]),
    }
    if decided:
        # One WHEN per distinct amount (a few per fixture), not one per ticket.
        by_payout: dict[Decimal, list[int]] = defaultdict(list)
        for pk in decided:
            by_payout[payouts[pk]].append(pk)
        updates["payout"] = Case(
            *[
                When(pk__in=pks, then=Value(amount, output_field=money))
                for amount, pks in by_payout.items()
            ],
            default=F("payout"),
            output_field=money,
        )
        updates["settled_at"] = Case(When(pk__in=decided, then=Value(now)), default=F("settled_at"))
    claimed = BetTicket.objects.filter(pk__in=changed, status__in=OPEN_STATUSES).update(**updates)
    if claimed != len(changed):
        raise SettlementRace(f"claimed {claimed} of {len(changed)} tickets")

    credits: dict[int, Decimal] = defaultdict(Decimal)
    entries = []
    if decided:
        already = set(
            LedgerEntry.objects.filter(
                ticket_id__in=decided, kind__in=(LedgerKind.PAYOUT, LedgerKind.REFUND)
            ).values_list("ticket_id", flat=True)
        )
        refunds = set(statuses.get(TicketStatus.VOID, ()))
        for pk in decided:
            amount = payouts[pk]
            wallet_id = meta[pk][2]
            if amount <= 0 or pk in already or wallet_id is None:
                continue
            kind = LedgerKind.REFUND if pk in refunds else LedgerKind.PAYOUT
            entries.append(LedgerEntry(wallet_id=wallet_id, kind=kind, amount=amount, ticket_id=pk))
            credits[wallet_id] += amount
    if entries:
        LedgerEntry.objects.bulk_create(entries, ignore_conflicts=True)
        by_credit: dict[Decimal, list[int]] = defaultdict(list)
        for wallet_id, amount in credits.items():
            by_credit[amount].append(wallet_id)
        Wallet.objects.filter(pk__in=list(credits)).update(
            balance=F("balance")
            + Case(
                *[
                    When(pk__in=wallets, then=Value(amount, output_field=money))
                    for amount, wallets in by_credit.items()
                ],
                default=Value(Decimal("0.00"), output_field=money),
                output_field=money,
            ),
            updated_at=now,
        )
        out.credited = sum(credits.values(), Decimal("0.00"))
    out.settled = decided
    if notify:
        for pk in decided:
            publish_on_commit(NOTIFY_TASK, pk)
    logger.info(
        "settled %s tickets (%s examined, %s partial), credited %s",
        len(decided),
        out.examined,
        out.partial,
        out.credited,
    )
    return out


def fixture_tickets(fixture_id: int) -> QuerySet[BetTicket]:
    """Open tickets with a settled leg on this fixture."""
    # One filter() call: both conditions apply to the same leg (a join, not a subquery).
    return BetTicket.objects.filter(
        legs__fixture_id=fixture_id, legs__result__gt="", status__in=OPEN_STATUSES
    )


@instrumented("settlement.fixture_tickets", warn_ms=2000, error_ms=10000)
def fixture_settle_tickets(
    *,
    fixture_id: int,
    batch_size: int | None = None,
    now: datetime | None = None,
    notify: bool = True,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Settle a fixture's tickets batch after batch (each batch its own transaction).

    Keyset paging by id: an undecided accumulator is looked at once per run, and rows another
    worker holds are skipped (that worker settles them).
    """
    batch_size = batch_size or batch_size_default()
    totals = {"batches": 0, "examined": 0, "settled": 0, "partial": 0}
    last_id = 0
    while max_batches is None or totals["batches"] < max_batches:
        result = tickets_settle_batch(
            candidates=fixture_tickets(fixture_id).filter(pk__gt=last_id),
            batch_size=batch_size,
            now=now,
            notify=notify,
        )
        if not result.examined:
            break
        last_id = result.last_id
        totals["batches"] += 1
        totals["examined"] += result.examined
        totals["settled"] += len(result.settled)
        totals["partial"] += result.partial
    return totals


def tickets_settle(
    *, ticket_ids: list[int], now: datetime | None = None, notify: bool = True
) -> dict[str, int]:
    """Settle these tickets if their legs decide them (reconcile, one-ticket task)."""
    totals = {"examined": 0, "settled": 0}
    size = batch_size_default()
    for start in range(0, len(ticket_ids), size):
        chunk = ticket_ids[start : start + size]
        result = tickets_settle_batch(
            candidates=BetTicket.objects.filter(pk__in=chunk),
            batch_size=len(chunk),
            now=now,
            notify=notify,
        )
        totals["examined"] += result.examined
        totals["settled"] += len(result.settled)
    return totals


@transaction.atomic
def fixture_void(*, fixture_id: int, now: datetime | None = None) -> int:
    """An operator voids every open leg on a fixture (e.g. a match that will not be replayed).

    The tickets settle in the next step (the admin action runs it; so does reconcile).
    """
    now = now or timezone.now()
    return BetLeg.objects.filter(fixture_id=fixture_id, result="").update(
        result=LegResult.VOID, settled_at=now, waiting_reason="voided by an operator"
    )


# --- reconcile selectors --------------------------------------------------------------------
def fixtures_needing_settlement(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Fixtures with open legs whose state lets them settle (final, void, PST past deadline)."""
    now = now or timezone.now()
    terminal = set(rules.FINISHED | rules.ALWAYS_VOID | rules.NOT_PLAYED | {rules.POSTPONED})
    open_leg = BetLeg.objects.filter(fixture_id=OuterRef("pk"), result="")
    candidates = (
        Fixture.objects.filter(status__in=terminal)
        .filter(Exists(open_leg))
        .order_by("kickoff")[: limit * 2]
    )
    out = []
    for fixture in candidates:
        if fixture_verdict_of(fixture, now=now).action != "wait":
            out.append(fixture.pk)
        if len(out) >= limit:
            break
    return out


def tickets_ready_to_settle(*, limit: int = 1000) -> list[int]:
    """Open tickets that every leg decides (no leg waits, or one leg lost), still unsettled."""
    open_leg = BetLeg.objects.filter(ticket_id=OuterRef("pk"), result="")
    lost_leg = BetLeg.objects.filter(ticket_id=OuterRef("pk"), result=LegResult.LOST)
    return list(
        BetTicket.objects.filter(status__in=OPEN_STATUSES)
        .filter(~Exists(open_leg) | Exists(lost_leg))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def tickets_unnotified(*, limit: int = 1000) -> list[int]:
    return list(
        BetTicket.objects.filter(settled_at__isnull=False, notified_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
