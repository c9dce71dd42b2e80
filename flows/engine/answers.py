"""Answers to questions: is the message a valid answer of the expected type, and its value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flows.engine.text import normalize
from flows.engine.types import Message

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
PHONE_STRIP_RE = re.compile(r"[\s\-().]")
PHONE_RE = re.compile(r"^\+?\d{7,15}$")
EMAIL_MAX = 254


def choice_options(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(id, title) of a choice question: its buttons or list rows, else its `choices`."""
    prompt = config.get("prompt") or {}
    options: list[tuple[str, str]] = []
    if prompt.get("type") == "buttons":
        options = [(str(b["id"]), str(b.get("title", ""))) for b in prompt.get("buttons") or []]
    elif prompt.get("type") == "list":
        options = [
            (str(row["id"]), str(row.get("title", "")))
            for section in prompt.get("sections") or []
            for row in section.get("rows") or []
        ]
    if config.get("choices"):
        titles = dict(options)
        options = [(str(c), titles.get(str(c), str(c))) for c in config["choices"]]
    return options


def _number(text: str) -> int | float | None:
    cleaned = text.strip().replace(" ", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value) if value.is_integer() and "." not in cleaned else value


def accept_answer(config: Mapping[str, Any], message: Message) -> tuple[bool, Any]:
    """(valid, value to store) for a question's expected type."""
    expect = config.get("expect", "text")
    text = message.text.strip()
    if expect == "location":
        if message.type == "location" and message.location:
            return True, dict(message.location)
        return False, None
    if expect == "choice":
        options = choice_options(config)
        ids = [option_id for option_id, _ in options]
        if message.reply_id and message.reply_id in ids:
            return True, message.reply_id
        typed = normalize(text)
        if not typed:
            return False, None
        for option_id, title in options:
            if typed in (normalize(option_id), normalize(title)):
                return True, option_id
        if typed.isdigit() and 1 <= int(typed) <= len(options):
            return True, options[int(typed) - 1][0]
        return False, None
    # The remaining types are typed answers; a tap on an old button is not an answer.
    if message.type != "text" or not text:
        return False, None
    if expect == "text":
        if len(text) < int(config.get("min_length", 1)):
            return False, None
        if "max_length" in config and len(text) > int(config["max_length"]):
            return False, None
        return True, text
    if expect == "number":
        value = _number(text)
        if value is None:
            return False, None
        if "min" in config and value < config["min"]:
            return False, None
        if "max" in config and value > config["max"]:
            return False, None
        return True, value
    if expect == "email":
        if len(text) > EMAIL_MAX or not EMAIL_RE.match(text):
            return False, None
        local, _, domain = text.rpartition("@")
        return True, f"{local}@{domain.lower()}"
    if expect == "phone":
        cleaned = PHONE_STRIP_RE.sub("", text)
        if cleaned.startswith("00"):
            cleaned = "+" + cleaned[2:]
        if not PHONE_RE.match(cleaned):
            return False, None
        return True, cleaned.lstrip("+")
    if expect == "regex":
        try:
            return (True, text) if re.fullmatch(config["pattern"], text) else (False, None)
        except (re.error, KeyError, TypeError):
            return False, None
    return False, None
