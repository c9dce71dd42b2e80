"""Flow actions of the football app (registered from FootballDataAppConfig.ready()).

They run inside the flow transaction while the customer waits: each does a few indexed
queries. The demo flow (flows/demo.py) chains them:

    football.fixtures  -> a list of upcoming fixtures with odds (row ids are positions)
    football.fixture   -> the fixture at context.fixture_pick: its 1X2 outcomes (for buttons)
    football.pick      -> the picked outcome (context.side) with its odds and the balance
    football.slip_add  -> adds the pick to the slip (one selection per fixture)
    football.place_bet -> places a single (context.pick) or the slip as an accumulator
    football.my_tickets, football.balance
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flows.actions import ActionCall, ActionResult, register
from football_data_app.models import BetTicket, Outcome, TicketStatus
from football_data_app.selectors import upcoming_fixtures_with_odds
from football_data_app.services.tickets import TicketRefused, potential_return, ticket_place
from football_data_app.services.wallet import wallet_get_or_create
from meta_integration.models import Contact

MENU_HINT = 'Send "menu" any time to see the options again.'
SIDES = ("home", "draw", "away")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _title(fixture: Any) -> str:
    return f"{fixture.home_team.name} v {fixture.away_team.name}"


def _contact(call: ActionCall) -> Contact:
    return Contact.objects.get(pk=call.contact["id"])


@register("football.fixtures")
def fixtures(call: ActionCall) -> ActionResult:
    limit = min(int(call.params.get("limit", 10)), 10)
    rows = upcoming_fixtures_with_odds(limit=limit)
    if not rows:
        return ActionResult(
            context={"count": 0, "ids": []},
            messages=[{"type": "text", "body": f"No fixtures with odds right now. {MENU_HINT}"}],
        )
    list_rows = []
    for position, row in enumerate(rows, 1):
        fixture = row.fixture
        odds = " / ".join(f"{o.odds:.2f}" for o in row.outcomes)
        list_rows.append(
            {
                # Position ids ("1".."10"): the flow's question accepts them tapped or typed.
                "id": str(position),
                "title": _short(_title(fixture), 24),
                "description": _short(f"{fixture.kickoff:%a %d %b %H:%M} · 1X2 {odds}", 72),
            }
        )
    message = {
        "type": "list",
        "header": "Upcoming fixtures",
        "body": "Pick a fixture to see its odds (home / draw / away).",
        "button": "Fixtures",
        "sections": [{"title": "Soonest first", "rows": list_rows}],
    }
    ids = [row.fixture.pk for row in rows]
    return ActionResult(context={"count": len(rows), "ids": ids}, messages=[message])


def _picked_fixture_id(call: ActionCall) -> int | None:
    """The fixture at the chosen position (context.fixture_pick) of the list last shown."""
    position = str(call.context.get("fixture_pick") or "")
    ids = (call.context.get("fixtures") or {}).get("ids") or []
    if position.isdigit() and 1 <= int(position) <= len(ids):
        return int(ids[int(position) - 1])
    return None


@register("football.fixture")
def fixture(call: ActionCall) -> ActionResult:
    """The picked fixture's Home/Draw/Away outcomes (fails when it is no longer offered)."""
    fixture_id = _picked_fixture_id(call)
    if fixture_id is None:
        return ActionResult(ok=False)
    offered = {row.fixture.pk: row for row in upcoming_fixtures_with_odds(limit=50)}
    row = offered.get(fixture_id)
    if row is None:
        return ActionResult(ok=False)
    context: dict[str, Any] = {
        "id": fixture_id,
        "title": _title(row.fixture),
        "kickoff": f"{row.fixture.kickoff:%a %d %b %H:%M} UTC",
        "outcomes": {},
    }
    for side, outcome in zip(SIDES, row.outcomes, strict=True):
        context[side] = f"{outcome.odds:.2f}"
        context["outcomes"][side] = outcome.pk
    return ActionResult(context=context)


def _balance(contact: Contact) -> str:
    wallet = wallet_get_or_create(contact=contact)
    return f"{wallet.balance:.2f} {wallet.currency}"


@register("football.pick")
def pick(call: ActionCall) -> ActionResult:
    """The outcome behind the tapped side (context.side), with its current odds."""
    fixture_ctx = call.context.get("fixture") or {}
    outcome_id = (fixture_ctx.get("outcomes") or {}).get(str(call.context.get("side")))
    outcome = (
        Outcome.objects.filter(pk=outcome_id, active=True).select_related("market").first()
        if outcome_id
        else None
    )
    if outcome is None:
        return ActionResult(ok=False)
    summary = f"{fixture_ctx.get('title')}: {outcome.label} @ {outcome.odds:.2f}"
    return ActionResult(
        context={
            "outcome_id": outcome.pk,
            "fixture_id": outcome.market.fixture_id,
            "summary": summary,
            "balance": _balance(_contact(call)),
        }
    )


def _slip_summary(slip: list[dict[str, Any]]) -> str:
    lines = [f"{i}. {item['summary']}" for i, item in enumerate(slip, 1)]
    product = Decimal("1")
    for item in slip:
        product *= Decimal(item["odds"])
    lines.append(f"Combined odds: {product:.2f}")
    return "\n".join(lines)


@register("football.slip_add")
def slip_add(call: ActionCall) -> ActionResult:
    """Add context.pick to context.slip; a second pick on a fixture replaces the first."""
    chosen = call.context.get("pick") or {}
    outcome = Outcome.objects.filter(pk=chosen.get("outcome_id"), active=True).first()
    if outcome is None:
        return ActionResult(ok=False)
    slip = [s for s in call.context.get("slip") or [] if s["fixture_id"] != chosen["fixture_id"]]
    slip.append(
        {
            "outcome_id": outcome.pk,
            "fixture_id": chosen["fixture_id"],
            "odds": f"{outcome.odds}",
            "summary": chosen["summary"],
        }
    )
    slip = slip[-10:]
    return ActionResult(context={"slip": slip, "slip_summary": _slip_summary(slip)})


def _stake(value: Any) -> Decimal | None:
    try:
        stake = Decimal(str(value).replace(",", ".")).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None
    return stake if stake.is_finite() and stake > 0 else None


@register("football.place_bet")
def place_bet(call: ActionCall) -> ActionResult:
    """Place a single (context.pick) or, with params.mode == "slip", the slip.

    A refusal is an answer, not a failure: the customer is told why (ok stays True).
    """
    mode = call.params.get("mode") or call.context.get("mode") or "single"
    if mode == "slip":
        selections = [s["outcome_id"] for s in call.context.get("slip") or []]
    else:
        selections = [(call.context.get("pick") or {}).get("outcome_id")]
    stake = _stake(call.context.get("stake"))
    contact = _contact(call)
    try:
        if stake is None:
            raise TicketRefused("The stake must be an amount such as 5 or 2.50.")
        ticket = ticket_place(contact=contact, selections=selections, stake=stake)
    except TicketRefused as exc:
        text = f"❌ Not placed: {exc} {MENU_HINT}"
        return ActionResult(context={"placed": False, "error": str(exc)}, messages=[_text(text)])
    legs = list(ticket.legs.all())
    lines = [f"✅ Ticket #{ticket.pk} placed ({ticket.kind}), stake {ticket.stake:.2f}."]
    lines += [f"• {leg.label} @ {leg.odds:.2f}" for leg in legs]
    lines.append(f"Potential return: {potential_return(ticket):.2f}.")
    lines.append(f"Balance: {_balance(contact)}. {MENU_HINT}")
    return ActionResult(
        context={"placed": True, "ticket_id": ticket.pk, "slip": []},
        messages=[_text("\n".join(lines))],
    )


def _text(body: str) -> dict[str, Any]:
    return {"type": "text", "body": body[:4096]}


@register("football.my_tickets")
def my_tickets(call: ActionCall) -> ActionResult:
    """Open tickets, then the last few settled ones."""
    open_statuses = (TicketStatus.PLACED, TicketStatus.PARTIALLY_SETTLED)
    tickets = list(
        BetTicket.objects.filter(contact_id=call.contact["id"])
        .prefetch_related("legs")
        .order_by("-placed_at")[:10]
    )
    open_tickets = [t for t in tickets if t.status in open_statuses]
    if not tickets:
        body = f"You have no tickets yet. Pick a fixture to place one. {MENU_HINT}"
        return ActionResult(context={"count": 0}, messages=[_text(body)])
    lines = [f"🎟️ Open tickets: {len(open_tickets)}"]
    for ticket in tickets:
        legs = ", ".join(f"{leg.label} @ {leg.odds:.2f}" for leg in ticket.legs.all())
        state = ticket.status.replace("_", " ")
        paid = f", paid {ticket.payout:.2f}" if ticket.payout else ""
        lines.append(f"#{ticket.pk} {state}: stake {ticket.stake:.2f}{paid} · {legs}")
    lines.append(MENU_HINT)
    return ActionResult(context={"count": len(open_tickets)}, messages=[_text("\n".join(lines))])


@register("football.balance")
def balance(call: ActionCall) -> ActionResult:
    shown = _balance(_contact(call))
    return ActionResult(
        context={"balance": shown},
        messages=[_text(f"💰 Your balance: {shown}. {MENU_HINT}")],
    )
