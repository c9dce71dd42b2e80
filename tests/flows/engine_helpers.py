"""Helpers for the pure engine tests: build definitions from plain dicts, run messages."""

from __future__ import annotations

from typing import Any

from flows.engine import (
    Message,
    Options,
    Outcome,
    SessionState,
    compile_definitions,
    handle_message,
)

CONTACT = {"id": 1, "wa_id": "16505551234", "profile_name": "Sheena", "name": "Sheena"}


def definitions(*flows: dict[str, Any], default: str | None = None) -> dict[str, Any]:
    prepared = []
    for flow in flows:
        steps = flow["steps"]
        if steps and not any(s.get("entry") for s in steps):
            steps[0]["entry"] = True
        prepared.append(
            {
                "active": True,
                "priority": 0,
                "trigger_keywords": [],
                **flow,
                "is_default": flow.get("is_default", flow["name"] == default),
            }
        )
    return compile_definitions(prepared)


def text(body: str) -> Message:
    return Message(type="text", text=body)


def tap(reply_id: str, title: str = "") -> Message:
    return Message(type="interactive", text=title or reply_id, reply_id=reply_id)


def run(
    defs: dict[str, Any],
    message: Message,
    state: SessionState | None = None,
    *,
    actions: dict[str, Any] | None = None,
    options: Options | None = None,
    contact: dict[str, Any] | None = None,
) -> Outcome:
    return handle_message(
        defs, state, message, contact or CONTACT, actions=actions or {}, options=options
    )


def bodies(outcome: Outcome) -> list[str]:
    return [m.get("body", m.get("name", "")) for m in outcome.sends]
