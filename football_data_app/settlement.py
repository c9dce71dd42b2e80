"""Settlement rules: pure functions over Decimal, no Django and no I/O.

Three questions, each answered from plain values so the table tests run in microseconds:

- `fixture_verdict`: may this fixture's legs settle now, and on which score (or are they void,
  or must they wait, and why)?
- `outcome_result`: given the 90-minute score, what is the result of one selection
  ("Home", "Over 2.25", "Home -0.75", "Yes", ...) of one market?
- `ticket_verdict`: given the stake and each leg's agreed odds and result, is the ticket
  decided, with which status and which payout (rounded down to the cent)?

House rules (docs/betting.md) are parameters, read from settings by the services.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation

CENT = Decimal("0.01")
ONE = Decimal("1")
HALF = Decimal("0.5")
ZERO = Decimal("0")

SCHEDULED = frozenset({"TBD", "NS"})
LIVE = frozenset({"1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE"})
FINISHED = frozenset({"FT", "AET", "PEN"})
NOT_PLAYED = frozenset({"AWD", "WO"})  # decided off the pitch: a house rule
ALWAYS_VOID = frozenset({"CANC", "ABD"})
POSTPONED = "PST"


class Result(enum.StrEnum):
    """Leg and outcome results (the values of models.LegResult)."""

    WON = "won"
    LOST = "lost"
    VOID = "void"
    PUSH = "push"
    HALF_WON = "half_won"
    HALF_LOST = "half_lost"


class TicketState(enum.StrEnum):
    """Ticket statuses (the values of models.TicketStatus)."""

    PLACED = "placed"
    WON = "won"
    LOST = "lost"
    VOID = "void"
    PARTIALLY_SETTLED = "partially_settled"


class UnsupportedMarket(ValueError):
    """A market or a label these rules cannot settle (placement refuses such selections)."""


# --- fixture state ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """`action` is "settle" (on `home`-`away`), "void" or "wait"; `reason` says why."""

    action: str
    reason: str = ""
    home: int | None = None
    away: int | None = None


def fixture_verdict(
    *,
    status: str,
    fulltime: tuple[int | None, int | None] | None,
    goals: tuple[int | None, int | None] | None,
    now: datetime,
    kickoff: datetime | None = None,
    postponed_at: datetime | None = None,
    void_not_played_on_pitch: bool = True,
    postponed_void_hours: int = 48,
) -> Verdict:
    """What settlement may do with a fixture right now.

    90-minute markets settle on `score.fulltime` (end of regulation), never on extra time or
    penalties; `goals` is only a fallback when the status is FT (there it equals the 90' score;
    after AET/PEN it includes extra time). A missing score is never invented: it waits.
    """
    status = (status or "").upper()
    if status in FINISHED:
        score = _score(fulltime)
        if score is None and status == "FT":
            score = _score(goals)
        if score is None:
            return Verdict("wait", f"{status} but the 90-minute score is missing")
        return Verdict("settle", f"{status}", score[0], score[1])
    if status in ALWAYS_VOID:
        return Verdict("void", f"{status}: not completed")
    if status in NOT_PLAYED:
        if void_not_played_on_pitch:
            return Verdict("void", f"{status}: not played on the pitch (house rule)")
        score = _score(fulltime) or _score(goals)
        if score is None:
            return Verdict("wait", f"{status} but the awarded score is missing")
        return Verdict("settle", f"{status}: settled on the awarded score", score[0], score[1])
    if status == POSTPONED:
        since = postponed_at or kickoff
        if since is None:
            return Verdict("wait", "PST: postponement time unknown")
        deadline = since + timedelta(hours=postponed_void_hours)
        if now >= deadline:
            return Verdict("void", f"PST: not played within {postponed_void_hours} h")
        return Verdict("wait", f"PST: void after {deadline:%Y-%m-%d %H:%M} UTC unless played")
    if status in LIVE:
        return Verdict("wait", f"{status}: in play or suspended")
    if status in SCHEDULED:
        return Verdict("wait", f"{status}: not started")
    return Verdict("wait", f"unknown status {status!r}")


def _score(pair: tuple[int | None, int | None] | None) -> tuple[int, int] | None:
    if not pair or pair[0] is None or pair[1] is None:
        return None
    return int(pair[0]), int(pair[1])


# --- markets and labels ----------------------------------------------------------------------
MARKET_KINDS = {
    "match winner": "1x2",
    "double chance": "double_chance",
    "home/away": "dnb",  # API-Football's name for draw no bet
    "draw no bet": "dnb",
    "both teams score": "btts",
    "both teams to score": "btts",
    "goals over/under": "over_under",
    "asian handicap": "asian_handicap",
}
_LINE = re.compile(r"^\s*(home|away|over|under)\s*([+-]?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)


def market_kind(bet_type_name: str) -> str:
    """The rule family of a bet type; only 90-minute full-match markets are supported."""
    kind = MARKET_KINDS.get((bet_type_name or "").strip().lower())
    if kind is None:
        raise UnsupportedMarket(f"market {bet_type_name!r} is not supported")
    return kind


def parse_label(kind: str, label: str, line: Decimal | None = None) -> tuple[str, Decimal | None]:
    """("home" | "draw" | "away" | "home/draw" | "over" | "yes" ..., line or None)."""
    text = (label or "").strip().lower()
    if kind in ("over_under", "asian_handicap"):
        match = _LINE.match(text)
        if match:
            side = match.group(1).lower()
            try:
                value = Decimal(match.group(2))
            except InvalidOperation as exc:  # pragma: no cover - the regex admits digits only
                raise UnsupportedMarket(f"bad line in {label!r}") from exc
        elif text in ("home", "away", "over", "under") and line is not None:
            side, value = text, Decimal(line)
        else:
            raise UnsupportedMarket(f"cannot read a line from {label!r}")
        allowed = ("over", "under") if kind == "over_under" else ("home", "away")
        if side not in allowed:
            raise UnsupportedMarket(f"{label!r} is not a {kind} selection")
        if (value * 4) % 1:
            raise UnsupportedMarket(f"line {value} is not a whole, half or quarter line")
        return side, value
    valid = {
        "1x2": ("home", "draw", "away"),
        "double_chance": ("home/draw", "home/away", "draw/away"),
        "dnb": ("home", "away"),
        "btts": ("yes", "no"),
    }[kind]
    text = text.replace(" ", "")
    if kind == "double_chance" and text in ("draw/home", "away/home", "away/draw"):
        text = "/".join(reversed(text.split("/")))
    if text not in valid:
        raise UnsupportedMarket(f"{label!r} is not a {kind} selection")
    return text, None


def _margin_result(margin: Decimal) -> Result:
    if margin > 0:
        return Result.WON
    if margin < 0:
        return Result.LOST
    return Result.PUSH


def _split_line(margin_without_line: Decimal, line: Decimal) -> Result:
    """Whole and half lines settle at once; a quarter line is half on each neighbour."""
    if (line * 2) % 1 == 0:
        return _margin_result(margin_without_line + line)
    low, high = line - Decimal("0.25"), line + Decimal("0.25")
    halves = {_margin_result(margin_without_line + low), _margin_result(margin_without_line + high)}
    if halves == {Result.WON}:
        return Result.WON
    if halves == {Result.LOST}:
        return Result.LOST
    if halves == {Result.WON, Result.PUSH}:
        return Result.HALF_WON
    if halves == {Result.LOST, Result.PUSH}:
        return Result.HALF_LOST
    # A quarter line's halves are 0.5 apart, so won + lost cannot happen.
    raise AssertionError(f"impossible quarter-line halves {halves}")  # pragma: no cover


def outcome_result(
    *, bet_type_name: str, label: str, home: int, away: int, line: Decimal | None = None
) -> Result:
    """The result of one selection on the 90-minute score `home`-`away`."""
    kind = market_kind(bet_type_name)
    side, value = parse_label(kind, label, line)
    winner = "home" if home > away else "away" if away > home else "draw"
    if kind == "1x2":
        return Result.WON if side == winner else Result.LOST
    if kind == "double_chance":
        return Result.WON if winner in side.split("/") else Result.LOST
    if kind == "dnb":
        if winner == "draw":
            return Result.PUSH
        return Result.WON if side == winner else Result.LOST
    if kind == "btts":
        both = home > 0 and away > 0
        return Result.WON if both == (side == "yes") else Result.LOST
    assert value is not None
    total = Decimal(home + away)
    if kind == "over_under":
        # Over wins by total - line; Under by line - total (the same split rules).
        return _split_line(total, -value) if side == "over" else _split_line(-total, value)
    diff = Decimal(home - away) if side == "home" else Decimal(away - home)
    return _split_line(diff, value)


def check_selection(*, bet_type_name: str, label: str, line: Decimal | None = None) -> None:
    """Raise UnsupportedMarket unless these rules can settle this selection."""
    parse_label(market_kind(bet_type_name), label, line)


# --- tickets ---------------------------------------------------------------------------------
def leg_factor(odds: Decimal, result: str) -> Decimal:
    """The leg's multiplier in an accumulator (a single is a one-leg accumulator)."""
    result = Result(result)
    if result == Result.WON:
        return Decimal(odds)
    if result in (Result.VOID, Result.PUSH):
        return ONE
    if result == Result.HALF_WON:
        return ONE + (Decimal(odds) - ONE) / 2
    if result == Result.HALF_LOST:
        return HALF
    return ZERO


def round_down(amount: Decimal) -> Decimal:
    return Decimal(amount).quantize(CENT, rounding=ROUND_DOWN)


@dataclass(frozen=True)
class TicketVerdict:
    """`decided`: final status and payout known. A refund is a void ticket's payout."""

    status: TicketState
    payout: Decimal | None = None
    decided: bool = False

    @property
    def is_refund(self) -> bool:
        return self.decided and self.status == TicketState.VOID


def ticket_verdict(*, stake: Decimal, legs: Sequence[tuple[Decimal, str | None]]) -> TicketVerdict:
    """Decide a ticket from its legs' (agreed odds, result or None while waiting).

    - Any lost leg decides the ticket at once: lost, payout 0 (other legs need not wait).
    - Otherwise, while a leg waits: placed if nothing is settled yet, else partially_settled
      (no payout until every leg has its result).
    - Every leg void or push: void, the stake is refunded.
    - Otherwise payout = stake x product of leg factors, rounded down to the cent; the status
      is won when the payout reaches the stake, lost when it is below (a half-lost single
      still returns half its stake: it is paid, and shown as lost).
    """
    if not legs:
        raise ValueError("a ticket has at least one leg")
    results = [Result(r) if r else None for _, r in legs]
    if Result.LOST in results:
        return TicketVerdict(TicketState.LOST, ZERO.quantize(CENT), True)
    if None in results:
        settled = any(r is not None for r in results)
        return TicketVerdict(TicketState.PARTIALLY_SETTLED if settled else TicketState.PLACED)
    stake = Decimal(stake)
    if all(r in (Result.VOID, Result.PUSH) for r in results):
        return TicketVerdict(TicketState.VOID, round_down(stake), True)
    factor = ONE
    for (odds, _), result in zip(legs, results, strict=True):
        factor *= leg_factor(Decimal(odds), result)
    payout = round_down(stake * factor)
    status = TicketState.WON if payout >= stake else TicketState.LOST
    return TicketVerdict(status, payout, True)
