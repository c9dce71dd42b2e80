"""Transition conditions: small JSON predicates over the message, context and contact.

    {}                                         always (the default transition)
    {"op": "reply_id", "value": "sales"}       the button/list reply id
    {"op": "equals", "var": "context.plan", "value": "gold"}
    {"all": [...]}, {"any": [...]}, {"not": {...}}

Evaluation never raises: a malformed condition (validation should have caught it) is false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flows.engine.text import CONTACT_FIELDS, compile_keyword, keyword_matches, normalize
from flows.engine.types import Message

MESSAGE_VARS = frozenset({"text", "reply_id", "message_type"})
# op -> the keys it needs besides "op"
OPS: dict[str, tuple[str, ...]] = {
    "always": (),
    "action_failed": (),
    "reply_id": ("value",),
    "message_type": ("value",),
    "equals": ("var", "value"),
    "not_equals": ("var", "value"),
    "in": ("var", "values"),
    "not_in": ("var", "values"),
    "contains": ("var", "value"),
    "regex": ("var", "pattern"),
    "exists": ("var",),
    "not_exists": ("var",),
    "gt": ("var", "value"),
    "gte": ("var", "value"),
    "lt": ("var", "value"),
    "lte": ("var", "value"),
}
COMBINATORS = ("all", "any", "not")


@dataclass(frozen=True)
class Env:
    message: Message
    context: Mapping[str, Any]
    contact: Mapping[str, Any]
    action_failed: bool = False


def is_default(condition: Any) -> bool:
    if not condition:
        return True
    return isinstance(condition, Mapping) and condition.get("op") == "always"


def var_valid(var: Any) -> bool:
    if not isinstance(var, str):
        return False
    if var in MESSAGE_VARS:
        return True
    head, _, rest = var.partition(".")
    if head == "context":
        return bool(rest) and all(rest.split("."))
    return head == "contact" and rest in CONTACT_FIELDS


def resolve(var: str, env: Env) -> Any:
    if var == "text":
        return env.message.text
    if var == "reply_id":
        return env.message.reply_id
    if var == "message_type":
        return env.message.type
    head, _, rest = var.partition(".")
    if head == "contact":
        return env.contact.get(rest)
    value: Any = env.context
    for part in rest.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return normalize(a) == normalize(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if (isinstance(a, int | float) and isinstance(b, str)) or (
        isinstance(a, str) and isinstance(b, int | float)
    ):
        number_a, number_b = _number(a), _number(b)
        return number_a is not None and number_a == number_b
    return a == b


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def evaluate(condition: Mapping[str, Any] | None, env: Env) -> bool:
    if is_default(condition):
        return True
    if not isinstance(condition, Mapping):
        return False
    try:
        return _evaluate(condition, env)
    except (TypeError, ValueError, KeyError, re.error):
        return False


def _evaluate(condition: Mapping[str, Any], env: Env) -> bool:
    if "all" in condition:
        return all(evaluate(c, env) for c in condition["all"])
    if "any" in condition:
        return any(evaluate(c, env) for c in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], env)
    op = condition.get("op")
    if op == "always":
        return True
    if op == "action_failed":
        return env.action_failed
    if op == "reply_id":
        return bool(env.message.reply_id) and env.message.reply_id == str(condition["value"])
    if op == "message_type":
        return env.message.type == str(condition["value"])
    value = resolve(condition["var"], env)
    if op == "exists":
        return value not in (None, "", [], {})
    if op == "not_exists":
        return value in (None, "", [], {})
    if op == "equals":
        return _same(value, condition["value"])
    if op == "not_equals":
        return not _same(value, condition["value"])
    if op == "in":
        return any(_same(value, v) for v in condition["values"])
    if op == "not_in":
        return not any(_same(value, v) for v in condition["values"])
    if op == "contains":
        return isinstance(value, str) and keyword_matches(
            compile_keyword(str(condition["value"])), value
        )
    if op == "regex":
        return (
            value is not None
            and re.search(condition["pattern"], str(value), re.IGNORECASE) is not None
        )
    if op in ("gt", "gte", "lt", "lte"):
        left, right = _number(value), _number(condition["value"])
        if left is None or right is None:
            return False
        return {
            "gt": left > right,
            "gte": left >= right,
            "lt": left < right,
            "lte": left <= right,
        }[op]
    return False


def validate_condition(condition: Any, path: str = "condition") -> list[tuple[str, str]]:
    """Errors as (path, message); an empty list means valid."""
    if condition in (None, {}):
        return []
    if not isinstance(condition, dict):
        return [(path, "must be an object")]
    for key in COMBINATORS:
        if key in condition:
            if len(condition) != 1:
                return [(path, f"'{key}' must be the only key")]
            inner = condition[key]
            if key == "not":
                return (
                    validate_condition(inner, f"{path}.not")
                    if inner
                    else [(f"{path}.not", "must be a condition")]
                )
            if not isinstance(inner, list) or not inner:
                return [(f"{path}.{key}", "must be a non-empty list of conditions")]
            errors: list[tuple[str, str]] = []
            for index, item in enumerate(inner):
                errors += validate_condition(item, f"{path}.{key}[{index}]")
            return errors
    op = condition.get("op")
    if op not in OPS:
        return [(f"{path}.op", f"unknown operator {op!r}; one of {', '.join(sorted(OPS))}")]
    errors = []
    for key in OPS[op]:
        if key not in condition:
            errors.append((f"{path}.{key}", "is required"))
    if "var" in condition and not var_valid(condition["var"]):
        errors.append(
            (
                f"{path}.var",
                f"{condition['var']!r} is not text, reply_id, message_type, context.<name> "
                f"or contact.<{'|'.join(sorted(CONTACT_FIELDS))}>",
            )
        )
    if "values" in condition and not isinstance(condition["values"], list):
        errors.append((f"{path}.values", "must be a list"))
    if op == "regex" and "pattern" in condition:
        try:
            re.compile(str(condition["pattern"]))
        except re.error as exc:
            errors.append((f"{path}.pattern", f"invalid regular expression: {exc}"))
    if (
        op in ("gt", "gte", "lt", "lte")
        and "value" in condition
        and _number(condition["value"]) is None
    ):
        errors.append((f"{path}.value", "must be a number"))
    return errors
