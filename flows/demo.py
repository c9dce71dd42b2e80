"""Demo flows loaded by `manage.py bootstrap_demo` (idempotent: imported by flow name).

- main_menu (the default flow): three buttons; every message from a contact without a session
  gets it. Invalid text re-prompts once, then ends with a hint to send "menu", so every
  inbound message gets at least one reply.
- lead_capture: name, email (validated, re-prompted), confirmation with placeholders.
- support: asks for the problem, then hands over to a human (the bot goes silent until an
  operator resolves the handover in the admin).
- Football entry points: "Fixtures" and "My tickets" run the actions football.fixtures and
  football.my_tickets; until the football app registers them, their error branch answers
  "coming soon".
"""

from __future__ import annotations

from typing import Any

from flows.selectors import EXPORT_FORMAT, EXPORT_VERSION
from flows.services import flows_import

MENU_HINT = 'Send "menu" any time to see the options again.'


def _choice(value: str, var: str = "choice") -> dict[str, Any]:
    return {"op": "equals", "var": f"context.{var}", "value": value}


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
        {
            "name": "football_menu",
            "type": "question",
            "config": {
                "prompt": {
                    "type": "buttons",
                    "body": "Football: what would you like to see?",
                    "buttons": [
                        {"id": "fixtures", "title": "Fixtures"},
                        {"id": "tickets", "title": "My tickets"},
                        # A reply id equal to a global command runs the command.
                        {"id": "menu", "title": "Main menu"},
                    ],
                },
                "expect": "choice",
                "save_as": "football_choice",
                "invalid_message": "Please tap one of the buttons below.",
                "max_retries": 1,
                "fallback": {
                    "action": "end",
                    "message": f"Sorry, I didn't get that. {MENU_HINT}",
                },
            },
            "transitions": [
                {"to": "fixtures", "condition": _choice("fixtures", "football_choice")},
                {"to": "my_tickets", "condition": _choice("tickets", "football_choice")},
            ],
        },
        {
            "name": "fixtures",
            "type": "action",
            "config": {"action": "football.fixtures", "save_as": "fixtures"},
            "transitions": [
                {"to": "coming_soon", "condition": {"op": "action_failed"}},
                {"to": "football_done", "condition": {}},
            ],
        },
        {
            "name": "my_tickets",
            "type": "action",
            "config": {"action": "football.my_tickets", "save_as": "tickets"},
            "transitions": [
                {"to": "coming_soon", "condition": {"op": "action_failed"}},
                {"to": "football_done", "condition": {}},
            ],
        },
        {
            "name": "coming_soon",
            "type": "end",
            "config": {"message": f"⚽ Fixtures and tickets are coming soon! {MENU_HINT}"},
            "transitions": [],
        },
        {"name": "football_done", "type": "end", "config": {}, "transitions": []},
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
