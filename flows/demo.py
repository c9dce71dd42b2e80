"""Demo flows loaded by `manage.py bootstrap_demo` (idempotent: imported by flow name).

- main_menu (the default flow): three buttons; every message from a contact without a session
  gets it. Invalid text re-prompts once, then ends with a hint to send "menu", so every
  inbound message gets at least one reply.
- lead_capture: name, email (validated, re-prompted), confirmation with placeholders.
- support: asks for the problem, then hands over to a human (the bot goes silent until an
  operator resolves the handover in the admin).
- Football: list fixtures with odds, pick Home/Draw/Away, bet on it (a single) or add it to
  the slip (an accumulator, one pick per fixture), enter a stake; see open tickets and the
  balance. The football.* actions are registered by football_data_app; without them the
  error branch answers "coming soon".
"""

from __future__ import annotations

from typing import Any

from flows.selectors import EXPORT_FORMAT, EXPORT_VERSION
from flows.services import flows_import

MENU_HINT = 'Send "menu" any time to see the options again.'


def _choice(value: str, var: str = "choice") -> dict[str, Any]:
    return {"op": "equals", "var": f"context.{var}", "value": value}


def _action(name: str, action: str, save_as: str | None, ok: str, failed: str) -> dict[str, Any]:
    config: dict[str, Any] = {"action": action}
    if save_as:
        config["save_as"] = save_as
    return {
        "name": name,
        "type": "action",
        "config": config,
        "transitions": [
            {"to": failed, "condition": {"op": "action_failed"}},
            {"to": ok, "condition": {}},
        ],
    }


def _end(name: str, message: str = "") -> dict[str, Any]:
    config = {"message": message} if message else {}
    return {"name": name, "type": "end", "config": config, "transitions": []}


def _give_up(message: str = "Sorry, I didn't get that.") -> dict[str, Any]:
    return {"action": "end", "message": f"{message} {MENU_HINT}"}


# Football: list fixtures -> pick one -> Home/Draw/Away -> bet now (single) or add to the slip
# (accumulator) -> stake -> ticket. The football.* actions live in football_data_app/actions.py.
FOOTBALL_STEPS: list[dict[str, Any]] = [
    {
        "name": "football_menu",
        "type": "question",
        "config": {
            "prompt": {
                "type": "list",
                "body": "Football: what would you like to see?",
                "button": "Football",
                "sections": [
                    {
                        "title": "Football",
                        "rows": [
                            {"id": "fixtures", "title": "Fixtures", "description": "Odds, bets"},
                            {"id": "tickets", "title": "My tickets"},
                            {"id": "balance", "title": "My balance"},
                            # A reply id equal to a global command runs the command.
                            {"id": "menu", "title": "Main menu"},
                        ],
                    }
                ],
            },
            "expect": "choice",
            "save_as": "football_choice",
            "invalid_message": "Please pick an option from the list.",
            "max_retries": 1,
            "fallback": _give_up(),
        },
        "transitions": [
            {"to": "fixtures", "condition": _choice("fixtures", "football_choice")},
            {"to": "my_tickets", "condition": _choice("tickets", "football_choice")},
            {"to": "balance", "condition": _choice("balance", "football_choice")},
        ],
    },
    {
        "name": "fixtures",
        "type": "action",
        "config": {"action": "football.fixtures", "save_as": "fixtures"},
        "transitions": [
            {"to": "coming_soon", "condition": {"op": "action_failed"}},
            {
                "to": "football_done",
                "condition": {"op": "equals", "var": "context.fixtures.count", "value": 0},
            },
            {"to": "pick_fixture", "condition": {}},
        ],
    },
    {
        "name": "pick_fixture",
        "type": "question",
        "config": {
            "prompt": {
                "type": "text",
                "body": "Tap a fixture in the list above (or type its number).",
            },
            # The list rows' ids are positions, so a tap or a typed number both answer.
            "expect": "choice",
            "choices": [str(position) for position in range(1, 11)],
            "invalid_message": "Please tap a fixture in the list, or type its number.",
            "save_as": "fixture_pick",
            "max_retries": 1,
            "fallback": _give_up(),
        },
        "transitions": [{"to": "fixture", "condition": {}}],
    },
    _action("fixture", "football.fixture", "fixture", "pick_side", "not_available"),
    {
        "name": "pick_side",
        "type": "question",
        "config": {
            "prompt": {
                "type": "buttons",
                "body": "{{ context.fixture.title }}, {{ context.fixture.kickoff }}\n"
                "Home {{ context.fixture.home }} · Draw {{ context.fixture.draw }} · "
                "Away {{ context.fixture.away }}",
                "buttons": [
                    {"id": "home", "title": "Home"},
                    {"id": "draw", "title": "Draw"},
                    {"id": "away", "title": "Away"},
                ],
            },
            "expect": "choice",
            "save_as": "side",
            "invalid_message": "Please tap Home, Draw or Away.",
            "max_retries": 1,
            "fallback": _give_up(),
        },
        "transitions": [{"to": "pick", "condition": {}}],
    },
    _action("pick", "football.pick", "pick", "bet_or_slip", "not_available"),
    {
        "name": "bet_or_slip",
        "type": "question",
        "config": {
            "prompt": {
                "type": "buttons",
                "body": "{{ context.pick.summary }}\nYour balance: {{ context.pick.balance }}.",
                "buttons": [
                    {"id": "single", "title": "Bet on this"},
                    {"id": "slip", "title": "Add to slip"},
                    {"id": "menu", "title": "Main menu"},
                ],
            },
            "expect": "choice",
            "save_as": "next",
            "max_retries": 1,
            "fallback": _give_up(),
        },
        "transitions": [
            {"to": "mode_single", "condition": _choice("single", "next")},
            {"to": "slip_add", "condition": _choice("slip", "next")},
        ],
    },
    {
        "name": "mode_single",
        "type": "set_variable",
        "config": {"set": {"mode": "single"}},
        "transitions": [{"to": "ask_stake", "condition": {}}],
    },
    _action("slip_add", "football.slip_add", None, "slip", "not_available"),
    {
        "name": "slip",
        "type": "question",
        "config": {
            "prompt": {
                "type": "buttons",
                "header": "Your bet slip",
                "body": "{{ context.slip_summary }}",
                "buttons": [
                    {"id": "more", "title": "Add another"},
                    {"id": "place", "title": "Place accumulator"},
                    {"id": "menu", "title": "Main menu"},
                ],
            },
            "expect": "choice",
            "save_as": "slip_choice",
            "max_retries": 1,
            "fallback": _give_up(),
        },
        "transitions": [
            {"to": "fixtures", "condition": _choice("more", "slip_choice")},
            {"to": "mode_slip", "condition": _choice("place", "slip_choice")},
        ],
    },
    {
        "name": "mode_slip",
        "type": "set_variable",
        "config": {"set": {"mode": "slip"}},
        "transitions": [{"to": "ask_stake", "condition": {}}],
    },
    {
        "name": "ask_stake",
        "type": "question",
        "config": {
            "prompt": {"type": "text", "body": "How much do you want to stake? (e.g. 5 or 2.50)"},
            "expect": "number",
            "min": 0.01,
            "save_as": "stake",
            "invalid_message": "Please type an amount, e.g. 5 or 2.50.",
            "max_retries": 2,
            "fallback": _give_up(),
        },
        "transitions": [{"to": "place_bet", "condition": {}}],
    },
    _action("place_bet", "football.place_bet", "bet", "football_done", "not_available"),
    _action("my_tickets", "football.my_tickets", "tickets", "football_done", "coming_soon"),
    _action("balance", "football.balance", "balance", "football_done", "coming_soon"),
    _end("not_available", f"Sorry, that is no longer available. {MENU_HINT}"),
    _end("coming_soon", f"⚽ Fixtures and tickets are coming soon! {MENU_HINT}"),
    _end("football_done"),
]

MAIN_MENU: dict[str, Any] = {
    "name": "main_menu",
    "description": "The main menu: the default flow for anyone without a conversation.",
    "active": True,
    "is_default": True,
    "priority": 0,
    "trigger_keywords": ["hi", "hello", "start"],
    "idle_timeout_seconds": None,
    "timeout_message": "",
    "steps": [
        {
            "name": "menu",
            "type": "question",
            "entry": True,
            "config": {
                "prompt": {
                    "type": "buttons",
                    "header": "Main menu",
                    "body": "Hi {{ name }}! How can we help you today?",
                    "footer": 'Send "menu" any time',
                    "buttons": [
                        {"id": "quote", "title": "Get a quote"},
                        {"id": "support", "title": "Support"},
                        {"id": "football", "title": "Football"},
                    ],
                },
                "expect": "choice",
                "save_as": "choice",
                "invalid_message": "Please tap one of the buttons below.",
                "max_retries": 1,
                "fallback": {
                    "action": "end",
                    "message": f"Sorry, I didn't get that. {MENU_HINT}",
                },
            },
            "transitions": [
                {"to": "to_lead_capture", "condition": _choice("quote")},
                {"to": "to_support", "condition": _choice("support")},
                {"to": "football_menu", "condition": _choice("football")},
            ],
        },
        {
            "name": "to_lead_capture",
            "type": "start_flow",
            "config": {"flow": "lead_capture"},
            "transitions": [],
        },
        {
            "name": "to_support",
            "type": "start_flow",
            "config": {"flow": "support"},
            "transitions": [],
        },
        *FOOTBALL_STEPS,
    ],
}

LEAD_CAPTURE: dict[str, Any] = {
    "name": "lead_capture",
    "description": "Collects a name and a validated email, then confirms them.",
    "active": True,
    "is_default": False,
    "priority": 10,
    "trigger_keywords": ["quote", "pricing", "sales"],
    "idle_timeout_seconds": 600,
    "timeout_message": 'We didn\'t hear back, so we closed this request. Send "quote" to start '
    "again.",
    "steps": [
        {
            "name": "ask_name",
            "type": "question",
            "entry": True,
            "config": {
                "prompt": {"type": "text", "body": "Great! What's your name?"},
                "expect": "text",
                "max_length": 100,
                "save_as": "name",
                "invalid_message": "Please type your name (up to 100 characters).",
                "max_retries": 2,
                "fallback": {"action": "end", "message": f"Let's try again later. {MENU_HINT}"},
            },
            "transitions": [{"to": "ask_email", "condition": {}}],
        },
        {
            "name": "ask_email",
            "type": "question",
            "config": {
                "prompt": {
                    "type": "text",
                    "body": "Thanks, {{ context.name }}! What's your email address?",
                },
                "expect": "email",
                "save_as": "email",
                "invalid_message": "That doesn't look like an email address "
                "(for example: jane@example.com).",
                "max_retries": 2,
                "fallback": {"action": "end", "message": f"Let's try again later. {MENU_HINT}"},
            },
            "transitions": [{"to": "confirm", "condition": {}}],
        },
        {
            "name": "confirm",
            "type": "question",
            "config": {
                "prompt": {
                    "type": "buttons",
                    "body": "Please confirm: {{ context.name }}, {{ context.email }}. "
                    "Is that right?",
                    "buttons": [
                        {"id": "yes", "title": "Yes"},
                        {"id": "change", "title": "Change email"},
                    ],
                },
                "expect": "choice",
                "save_as": "confirmed",
                "max_retries": 2,
            },
            "transitions": [
                {"to": "ask_email", "condition": _choice("change", "confirmed")},
                {"to": "thanks", "condition": {}},
            ],
        },
        {
            "name": "thanks",
            "type": "end",
            "config": {
                "message": "Thank you, {{ context.name }}! Our team will email you at "
                "{{ context.email }} within one business day."
            },
            "transitions": [],
        },
    ],
}

SUPPORT: dict[str, Any] = {
    "name": "support",
    "description": "Asks for the problem, then hands the conversation to a human.",
    "active": True,
    "is_default": False,
    "priority": 10,
    "trigger_keywords": ["support", "help", "agent", "human"],
    "idle_timeout_seconds": None,
    "timeout_message": "",
    "steps": [
        {
            "name": "describe",
            "type": "question",
            "entry": True,
            "config": {
                "prompt": {
                    "type": "text",
                    "body": "Sorry to hear you need help, {{ name }}. "
                    "Please describe the problem in one message.",
                },
                "expect": "text",
                "save_as": "problem",
                "max_retries": 1,
                "fallback": {
                    "action": "handover",
                    "message": "I'll pass you to a member of our team.",
                },
            },
            "transitions": [{"to": "handover", "condition": {}}],
        },
        {
            "name": "handover",
            "type": "handover",
            "config": {
                "message": "Thanks! I've passed this to our team; a person will reply here shortly."
            },
            "transitions": [],
        },
    ],
}

DEMO_FLOWS: dict[str, Any] = {
    "format": EXPORT_FORMAT,
    "version": EXPORT_VERSION,
    "flows": [MAIN_MENU, LEAD_CAPTURE, SUPPORT],
}


def load_demo() -> dict[str, Any]:
    summary = flows_import(data=DEMO_FLOWS)
    return {"flows": len(DEMO_FLOWS["flows"]), **summary}
