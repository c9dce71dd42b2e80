"""`manage.py simulate_bets`: simulated customers betting through the demo football flow.

Each customer talks to the live web process over the real signed webhook and reads the bot's
answers back from the Graph sandbox (`/sandbox/meta/sent?to=<wa_id>`): the fixtures it bets on
are picked from the list message the bot sent, never from the database. The pure parts (what
a reply says, which rows to pick, the confirmation and the settlement notice) are plain
functions; `Chat` does the HTTP of one customer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from meta_integration.envelopes import encode_event, webhook_envelope
from meta_integration.signatures import HEADER, sign
from meta_integration.simulation import SimUser, new_wamid

SIDES = ("home", "draw", "away")
# Texts of the demo flow that end an attempt (flows/demo.py, football_data_app/actions.py).
FAILURES = ("no longer available", "Not placed", "didn't get that", "No fixtures with odds")
CONFIRMED = re.compile(r"✅ Ticket #(\d+) placed \((single|accumulator)\)")
KICKOFF = re.compile(r"^\w{3} (\d{2}) (\w{3}) (\d{2}):(\d{2})")


class StepFailed(RuntimeError):
    """The bot did not answer a step as the demo flow does (or refused it)."""


# --- pure parts -------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """The readable parts of one message the sandbox accepted."""

    text: str
    button_ids: tuple[str, ...] = ()
    rows: tuple[dict[str, str], ...] = ()


def view(sent: dict[str, Any]) -> View:
    payload = sent.get("payload") or {}
    kind = payload.get("type")
    if kind == "text":
        return View(text=payload["text"]["body"])
    if kind == "template":
        template = payload["template"]
        params = [
            str(p.get("text", ""))
            for c in template.get("components") or []
            for p in c.get("parameters") or []
        ]
        return View(text=f"[template {template['name']}] " + " ".join(params))
    interactive = payload.get("interactive") or {}
    action = interactive.get("action") or {}
    buttons = tuple(b["reply"]["id"] for b in action.get("buttons") or [])
    rows = tuple(row for section in action.get("sections") or [] for row in section["rows"])
    return View(text=(interactive.get("body") or {}).get("text", ""), button_ids=buttons, rows=rows)


@dataclass(frozen=True)
class FixtureRow:
    row_id: str
    title: str
    kickoff: datetime


def row_kickoff(description: str, now: datetime) -> datetime | None:
    """The kick-off in a row description ("Wed 02 Dec 15:10 · 1X2 ..."; UTC, no year)."""
    match = KICKOFF.match(description)
    if not match:
        return None
    day, month, hour, minute = match.groups()
    candidates = []
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            stamp = f"{year} {month} {day} {hour}:{minute}"
            candidates.append(datetime.strptime(stamp, "%Y %b %d %H:%M").replace(tzinfo=UTC))
        except ValueError:  # 29 Feb of another year
            continue
    return min(candidates, key=lambda c: abs(c - now)) if candidates else None


def fixture_rows(views: Sequence[View], now: datetime) -> list[FixtureRow]:
    """The fixtures the bot's list offers, in its order (soonest first)."""
    rows = []
    for item in views:
        for row in item.rows:
            kickoff = row_kickoff(row.get("description", ""), now)
            if row["id"].isdigit() and kickoff is not None:
                rows.append(FixtureRow(row["id"], row["title"], kickoff))
    return rows


def choose(
    rows: Sequence[FixtureRow],
    *,
    now: datetime,
    min_lead: float,
    index: int,
    max_lead: float | None = None,
    spread: int = 3,
    exclude: Sequence[str] = (),
) -> FixtureRow | None:
    """The index-th (mod spread) of the soonest rows kicking off min_lead..max_lead from now.

    Not too soon (the conversation must end before the kick-off), not too late (the run waits
    for the result): when no row kicks off before max_lead, the soonest later one. Spreading
    the customers over a few fixtures varies the results.
    """
    usable = [
        r for r in rows if r.kickoff - now >= timedelta(seconds=min_lead) and r.title not in exclude
    ]
    if max_lead is not None:
        early = [r for r in usable if r.kickoff - now <= timedelta(seconds=max_lead)]
        usable = early or usable[:1]
    if not usable:
        return None
    pool = usable[: max(1, spread)]
    return pool[index % len(pool)]


def confirmation(text: str) -> tuple[int, str] | None:
    """(ticket id, kind) from the bot's "✅ Ticket #N placed (kind)" message."""
    match = CONFIRMED.search(text)
    return (int(match.group(1)), match.group(2)) if match else None


def settlement_key(ticket_id: int) -> str:
    """The idempotency key (echoed as biz_opaque_callback_data) of a settlement notice."""
    return f"ticket:{ticket_id}:settled"


def notified(ticket_id: int, sent: Sequence[dict[str, Any]]) -> bool:
    """Did the sandbox accept the ticket's settlement message (text or template)?"""
    key = settlement_key(ticket_id)
    return any(m.get("biz_opaque_callback_data") == key for m in sent)


def interactive_event(
    user: SimUser, *, kind: str, reply_id: str, title: str, wamid: str, numbers: dict[str, str]
) -> dict[str, Any]:
    """A tapped reply button (kind "button_reply") or list row (kind "list_reply")."""
    return _event(
        user,
        wamid,
        numbers,
        {
            "type": "interactive",
            "interactive": {"type": kind, kind: {"id": reply_id, "title": title}},
        },
    )


def text_event(user: SimUser, *, text: str, wamid: str, numbers: dict[str, str]) -> dict:
    return _event(user, wamid, numbers, {"type": "text", "text": {"body": text}})


def _event(user: SimUser, wamid: str, numbers: dict[str, str], message: dict) -> dict:
    return webhook_envelope(
        waba_id=numbers["waba_id"],
        phone_number_id=numbers["phone_number_id"],
        display_phone_number=numbers["display_phone_number"],
        value={
            "contacts": [
                {"profile": {"name": user.name}, "wa_id": user.wa_id, "user_id": user.user_id}
            ],
            "messages": [
                {"from": user.wa_id, "id": wamid, "timestamp": str(int(time.time())), **message}
            ],
        },
    )


# --- one customer over HTTP ---------------------------------------------------------------------
@dataclass(frozen=True)
class Lead:
    """How far ahead (seconds) a fixture to bet on may kick off; max None: no limit."""

    min: float
    max: float | None = None


@dataclass
class Ticket:
    wa_id: str
    kind: str
    ticket_id: int | None = None
    fixtures: list[str] = field(default_factory=list)
    confirmation: str = ""
    error: str = ""


@dataclass
class Chat:
    user: SimUser
    session: requests.Session
    webhook_url: str
    sandbox_url: str
    secret: str
    numbers: dict[str, str]
    rng: Any
    step_timeout: float = 30.0
    started: float = field(default_factory=time.time)

    def sent(self) -> list[dict[str, Any]]:
        response = self.session.get(
            f"{self.sandbox_url}/sandbox/meta/sent",
            params={"to": self.user.wa_id, "since": self.started - 1},
            timeout=10,
        )
        response.raise_for_status()
        return response.json().get("messages", [])

    def _post(self, event: dict[str, Any]) -> None:
        body = encode_event(event)
        headers = {"Content-Type": "application/json", HEADER: sign(body, self.secret)}
        response = self.session.post(self.webhook_url, data=body, headers=headers, timeout=10)
        if response.status_code != 200:
            raise StepFailed(f"webhook answered {response.status_code}")

    def exchange(self, event: dict[str, Any], ok: Callable[[View], bool]) -> list[View]:
        """Post one message; wait until a reply satisfies `ok` (or the flow gives up)."""
        wamid = event["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        self._post(event)
        prefix = f"{wamid}:"
        deadline = time.monotonic() + self.step_timeout
        views: list[View] = []
        while time.monotonic() < deadline:
            replies = [
                m
                for m in self.sent()
                if (m.get("biz_opaque_callback_data") or "").startswith(prefix)
            ]
            replies.sort(key=lambda m: int(m["biz_opaque_callback_data"].rpartition(":")[2]))
            views = [view(m) for m in replies]
            if any(ok(v) for v in views):
                return views
            failed = [v.text for v in views if any(word in v.text for word in FAILURES)]
            if failed:
                raise StepFailed(failed[0])
            time.sleep(0.2)
        raise StepFailed(
            f"no expected reply within {self.step_timeout:.0f}s: {[v.text for v in views]}"
        )

    def say(self, text: str, ok: Callable[[View], bool]) -> list[View]:
        return self.exchange(
            text_event(self.user, text=text, wamid=new_wamid(self.rng), numbers=self.numbers), ok
        )

    def tap(self, reply_id: str, title: str, ok: Callable[[View], bool], kind="button_reply"):
        event = interactive_event(
            self.user,
            kind=kind,
            reply_id=reply_id,
            title=title,
            wamid=new_wamid(self.rng),
            numbers=self.numbers,
        )
        return self.exchange(event, ok)


def _has_button(reply_id: str) -> Callable[[View], bool]:
    return lambda v: reply_id in v.button_ids


def _has_row(reply_id: str) -> Callable[[View], bool]:
    return lambda v: any(r["id"] == reply_id for r in v.rows)


def _lists_fixtures(v: View) -> bool:
    return any(r["id"].isdigit() for r in v.rows)


def _asks_stake(v: View) -> bool:
    return "stake?" in v.text


def _pick(
    chat: Chat, listing: list[View], *, index: int, leg: int, lead: Lead, exclude: list[str]
) -> FixtureRow:
    """Tap a fixture of the list just shown, then a side; leaves the flow at "bet or slip"."""
    now = datetime.now(UTC)
    row = choose(
        fixture_rows(listing, now),
        now=now,
        min_lead=lead.min,
        max_lead=lead.max,
        index=index + leg,
        exclude=exclude,
    )
    if row is None:
        raise StepFailed(f"no listed fixture kicks off {lead.min:.0f}s or more from now")
    chat.tap(row.row_id, row.title, _has_button("home"), kind="list_reply")
    side = SIDES[(index + leg) % len(SIDES)]
    chat.tap(side, side.title(), _has_button("single"))
    return row


def bet(chat: Chat, *, kind: str, index: int, stake: str, lead: Lead) -> Ticket:
    """One ticket from "menu" to the bot's confirmation: a single, or an accumulator of 2 legs."""
    ticket = Ticket(wa_id=chat.user.wa_id, kind=kind)
    # "menu" (a global command) also restarts a conversation an earlier attempt left open.
    chat.say("menu", _has_button("football"))
    chat.tap("football", "Football", _has_row("fixtures"))
    listing = chat.tap("fixtures", "Fixtures", _lists_fixtures, kind="list_reply")
    first = _pick(chat, listing, index=index, leg=0, lead=lead, exclude=[])
    ticket.fixtures.append(first.title)
    if kind == "single":
        chat.tap("single", "Bet on this", _asks_stake)
    else:
        chat.tap("slip", "Add to slip", _has_button("place"))
        listing = chat.tap("more", "Add another", _lists_fixtures)
        second = _pick(chat, listing, index=index, leg=1, lead=lead, exclude=[first.title])
        ticket.fixtures.append(second.title)
        chat.tap("slip", "Add to slip", _has_button("place"))
        chat.tap("place", "Place accumulator", _asks_stake)
    replies = chat.say(stake, lambda v: confirmation(v.text) is not None)
    placed = next(v for v in replies if confirmation(v.text) is not None)
    parsed = confirmation(placed.text)
    assert parsed is not None
    ticket.ticket_id, confirmed_kind = parsed
    ticket.confirmation = placed.text
    if confirmed_kind != kind:
        raise StepFailed(f"asked for a {kind}, the bot placed a {confirmed_kind}")
    return ticket


def bet_with_retry(
    chat: Chat, *, kind: str, index: int, stake: str, lead: Lead, attempts: int = 2
) -> Ticket:
    """A fixture can kick off mid-conversation (the bot then refuses it): try again once."""
    error = ""
    for attempt in range(attempts):
        try:
            return bet(chat, kind=kind, index=index + attempt, stake=stake, lead=lead)
        except (StepFailed, requests.RequestException) as exc:
            error = str(exc)
    return Ticket(wa_id=chat.user.wa_id, kind=kind, error=error)
