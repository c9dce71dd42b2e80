"""Plain data the engine reads and returns: no Django, no I/O.

The engine never sees a model. Services translate rows into these dataclasses and back, so the
rules can be tested in microseconds and cannot touch the database behind anyone's back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class StepType(enum.StrEnum):
    SEND = "send"
    QUESTION = "question"
    CONDITION = "condition"
    SET_VARIABLE = "set_variable"
    ACTION = "action"
    START_FLOW = "start_flow"
    HANDOVER = "handover"
    END = "end"


# Steps that run without waiting for the customer: a cycle made only of these would spin.
AUTOMATIC_STEPS = frozenset(
    {StepType.SEND, StepType.CONDITION, StepType.SET_VARIABLE, StepType.ACTION, StepType.START_FLOW}
)
# Steps that stop the run (the session ends or waits for an operator).
TERMINAL_STEPS = frozenset({StepType.HANDOVER, StepType.END})


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXPIRED = "expired"
    HANDED_OVER = "handed_over"
    CANCELLED = "cancelled"


# How many steps one inbound message may run before the guard stops the session. Real flows
# chain a handful; a definition loop that slipped past validation hits this instead of spinning.
MAX_CHAIN_STEPS = 50

# Inbound types the bot never answers: a reaction (a 👍 on "thanks") is not a request, and
# answering it would restart the menu under the customer's thumb.
SILENT_MESSAGE_TYPES = frozenset({"reaction"})

DEFAULT_TEXTS: dict[str, str] = {
    "cancelled": 'OK, I\'ve stopped. Send "menu" any time to start again.',
    "nothing_to_cancel": 'There\'s nothing to cancel. Send "menu" to see the options.',
    "no_menu": "Sorry, there is no menu available right now.",
    "error": 'Sorry, something went wrong on our side. Send "menu" to start again.',
    "action_unavailable": 'Sorry, that isn\'t available right now. Send "menu" to start again.',
    "invalid_fallback": 'Sorry, I didn\'t understand. Send "menu" to start again.',
    "timeout": "This conversation was closed after a period of inactivity. "
    'Send "menu" to start again.',
}


@dataclass(frozen=True)
class Message:
    """One inbound message as the engine sees it."""

    type: str = "text"  # text, interactive, button, location, image, ...
    text: str = ""  # body, caption or the reply's title
    reply_id: str = ""  # button/list reply id (or a template quick-reply payload)
    location: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "reply_id": self.reply_id,
            "location": dict(self.location) if self.location else None,
        }


@dataclass
class SessionState:
    """A conversation session: which flow, which step, what it has collected."""

    flow: str
    step: str | None
    context: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0  # invalid answers given to the current question
    status: str = SessionStatus.ACTIVE
    ended_reason: str = ""
    id: int | None = None  # the stored row; None means the engine started it

    @property
    def active(self) -> bool:
        return self.status == SessionStatus.ACTIVE


@dataclass(frozen=True)
class ActionCall:
    """What a registered action receives (copies: mutating them changes nothing)."""

    name: str
    params: Mapping[str, Any]
    context: dict[str, Any]
    contact: Mapping[str, Any]  # id, wa_id, profile_name, name
    message: Mapping[str, Any]  # type, text, reply_id, location


@dataclass
class ActionResult:
    """What a registered action returns (a plain dict is taken as `context`, None as empty).

    `context` lands in the session context (under the step's `save_as`, else merged at the top
    level); `messages` are message specs sent as they are (never placeholder-expanded, so data
    from elsewhere cannot smuggle a placeholder in); `ok=False` takes the step's error branch
    without raising.
    """

    context: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = True
    error: str = ""


ActionFunc = Callable[[ActionCall], "ActionResult | dict[str, Any] | None"]


@dataclass(frozen=True)
class Options:
    # command word (normalised) -> "menu" | "cancel"
    global_commands: Mapping[str, str] = field(
        default_factory=lambda: {"menu": "menu", "cancel": "cancel"}
    )
    texts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TEXTS))
    max_chain_steps: int = MAX_CHAIN_STEPS

    def text(self, key: str) -> str:
        return self.texts.get(key) or DEFAULT_TEXTS[key]


@dataclass
class Outcome:
    """The result of one inbound message.

    `sessions`: every session touched, in the order it happened (an ended one before the one
    that replaced it). `actions`: outbound sends ({"type": "send", "message": spec}) and control
    actions ({"type": "handover"}), in order. `logs`: (level, text) for the caller to log.
    """

    sessions: list[SessionState] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def state(self) -> SessionState | None:
        """The session left open (active or handed over), if any."""
        if self.sessions and self.sessions[-1].status in (
            SessionStatus.ACTIVE,
            SessionStatus.HANDED_OVER,
        ):
            return self.sessions[-1]
        return None

    @property
    def sends(self) -> list[dict[str, Any]]:
        return [a["message"] for a in self.actions if a["type"] == "send"]

    @property
    def handover(self) -> bool:
        return any(a["type"] == "handover" for a in self.actions)
