"""Pure validation of flow definitions (the export/import shape), with JSON paths in errors.

Used by the admin forms, by import (every error of a file, before anything is written) and by
tests. Meta's own limits (3 buttons, 20-character titles...) are checked by the
`check_message` callback the caller passes: the message builders, so one rule lives in one
place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flows.engine.conditions import is_default, validate_condition
from flows.engine.graph import find_automatic_cycle
from flows.engine.text import unknown_placeholders
from flows.engine.types import TERMINAL_STEPS, StepType

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_MAX = 100
EXPECT_TYPES = ("text", "number", "email", "phone", "choice", "regex", "location")
PROMPT_TYPES = ("text", "buttons", "list")
MESSAGE_KEYS: dict[str, tuple[set[str], set[str]]] = {
    # type -> (required, optional)
    "text": ({"body"}, set()),
    "buttons": ({"body", "buttons"}, {"header", "footer"}),
    "list": ({"body", "button", "sections"}, {"header", "footer"}),
    "template": ({"name"}, {"language", "params"}),
}
STEP_KEYS: dict[str, tuple[set[str], set[str]]] = {
    StepType.SEND: (set(), set()),  # a message spec: checked by _message
    StepType.QUESTION: (
        {"prompt", "expect"},
        {
            "save_as",
            "pattern",
            "choices",
            "min",
            "max",
            "min_length",
            "max_length",
            "invalid_message",
            "max_retries",
            "fallback",
        },
    ),
    StepType.CONDITION: (set(), {"description"}),
    StepType.SET_VARIABLE: ({"set"}, set()),
    StepType.ACTION: ({"action"}, {"params", "save_as"}),
    StepType.START_FLOW: ({"flow"}, set()),
    StepType.HANDOVER: (set(), {"message"}),
    StepType.END: (set(), {"message"}),
}
MAX_RETRIES_LIMIT = 10

# (spec) -> [(sub-path, message)]: the builders' verdict on a message spec.
MessageCheck = Callable[[Mapping[str, Any]], list[tuple[str, str]]]


@dataclass(frozen=True)
class ConfigError:
    path: str
    message: str
    code: str = "invalid"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _join(base: str, sub: str) -> str:
    if not base:
        return sub
    if not sub:
        return base
    return f"{base}{sub}" if sub.startswith("[") else f"{base}.{sub}"


def _text_errors(value: Any, path: str, *, required: bool) -> list[ConfigError]:
    if value is None or value == "":
        return [ConfigError(path, "is required")] if required else []
    if not isinstance(value, str):
        return [ConfigError(path, "must be a string")]
    unknown = unknown_placeholders(value)
    if unknown:
        return [
            ConfigError(
                path,
                f"unknown placeholder {{{{ {unknown[0]} }}}}; use name, profile_name, wa_id, "
                "contact.<field> or context.<variable>",
            )
        ]
    return []


def validate_message(
    spec: Any,
    path: str,
    *,
    check_message: MessageCheck | None,
    allowed: Sequence[str] | None = None,
) -> list[ConfigError]:
    if not isinstance(spec, dict):
        return [ConfigError(path, "must be an object with a 'type'")]
    kind = spec.get("type")
    types = allowed or tuple(MESSAGE_KEYS)
    if kind not in types:
        return [ConfigError(_join(path, "type"), f"must be one of {', '.join(types)}")]
    required, optional = MESSAGE_KEYS[kind]
    errors = [ConfigError(_join(path, key), "is required") for key in sorted(required - set(spec))]
    for key in sorted(set(spec) - required - optional - {"type"}):
        errors.append(ConfigError(_join(path, key), "is not a known field"))
    for key in ("body", "header", "footer"):
        if key in spec:
            errors += _text_errors(spec[key], _join(path, key), required=key == "body")
    if kind == "buttons" and "buttons" in spec and not isinstance(spec["buttons"], list):
        errors.append(ConfigError(_join(path, "buttons"), "must be a list of {id, title}"))
    if kind == "list" and "sections" in spec and not isinstance(spec["sections"], list):
        errors.append(ConfigError(_join(path, "sections"), "must be a list of sections"))
    if kind == "template" and "params" in spec and not isinstance(spec["params"], list):
        errors.append(ConfigError(_join(path, "params"), "must be a list of strings"))
    if not errors and check_message is not None:
        errors += [ConfigError(_join(path, sub), msg) for sub, msg in check_message(spec)]
    return errors


def _identifier(value: Any, path: str) -> list[ConfigError]:
    if not isinstance(value, str) or not IDENTIFIER_RE.match(value):
        return [ConfigError(path, "must be a variable name (letters, digits, _)")]
    return []


def _keys(config: dict[str, Any], step_type: str, path: str) -> list[ConfigError]:
    required, optional = STEP_KEYS[step_type]
    errors = [ConfigError(_join(path, k), "is required") for k in sorted(required - set(config))]
    errors += [
        ConfigError(_join(path, k), "is not a known field")
        for k in sorted(set(config) - required - optional)
    ]
    return errors


def _choice_ids(prompt: Mapping[str, Any]) -> list[str]:
    if prompt.get("type") == "buttons":
        return [str(b.get("id", "")) for b in prompt.get("buttons") or [] if isinstance(b, dict)]
    if prompt.get("type") == "list":
        return [
            str(row.get("id", ""))
            for section in prompt.get("sections") or []
            if isinstance(section, dict)
            for row in section.get("rows") or []
            if isinstance(row, dict)
        ]
    return []


def _question(config: dict[str, Any], path: str, check: MessageCheck | None) -> list[ConfigError]:
    errors: list[ConfigError] = []
    if "prompt" in config:
        errors += validate_message(
            config["prompt"], _join(path, "prompt"), check_message=check, allowed=PROMPT_TYPES
        )
    expect = config.get("expect")
    if "expect" in config and expect not in EXPECT_TYPES:
        errors.append(
            ConfigError(_join(path, "expect"), f"must be one of {', '.join(EXPECT_TYPES)}")
        )
    if "save_as" in config:
        errors += _identifier(config["save_as"], _join(path, "save_as"))
    if expect == "regex":
        pattern = config.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            errors.append(ConfigError(_join(path, "pattern"), "is required when expect is regex"))
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                errors.append(
                    ConfigError(_join(path, "pattern"), f"invalid regular expression: {exc}")
                )
    if expect == "choice":
        choices = config.get("choices")
        if choices is not None and (
            not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices)
        ):
            errors.append(ConfigError(_join(path, "choices"), "must be a list of reply ids"))
        elif (
            not choices
            and isinstance(config.get("prompt"), dict)
            and not _choice_ids(config["prompt"])
        ):
            errors.append(
                ConfigError(
                    _join(path, "choices"),
                    "a choice question needs buttons, list rows or a 'choices' list",
                )
            )
    for key in ("min", "max", "min_length", "max_length"):
        value = config.get(key)
        if key in config and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.append(ConfigError(_join(path, key), "must be a number"))
    if "max_retries" in config:
        value = config["max_retries"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (0 <= value <= MAX_RETRIES_LIMIT)
        ):
            errors.append(
                ConfigError(_join(path, "max_retries"), f"must be an integer 0-{MAX_RETRIES_LIMIT}")
            )
    if "invalid_message" in config:
        errors += _text_errors(
            config["invalid_message"], _join(path, "invalid_message"), required=False
        )
    if "fallback" in config:
        fallback = config["fallback"]
        fpath = _join(path, "fallback")
        if not isinstance(fallback, dict):
            errors.append(ConfigError(fpath, "must be an object {action, message}"))
        else:
            if fallback.get("action", "end") not in ("end", "handover"):
                errors.append(ConfigError(_join(fpath, "action"), "must be end or handover"))
            for key in sorted(set(fallback) - {"action", "message"}):
                errors.append(ConfigError(_join(fpath, key), "is not a known field"))
            errors += _text_errors(fallback.get("message"), _join(fpath, "message"), required=False)
    return errors


def validate_step_config(
    step_type: str,
    config: Any,
    *,
    path: str = "config",
    check_message: MessageCheck | None = None,
) -> list[ConfigError]:
    """Errors of one step's config; paths start at `path` (e.g. "config.buttons")."""
    if step_type not in STEP_KEYS:
        return [ConfigError("type", f"unknown step type {step_type!r}")]
    if not isinstance(config, dict):
        return [ConfigError(path, "must be an object")]
    if step_type == StepType.SEND:
        return validate_message(config, path, check_message=check_message)
    errors = _keys(config, step_type, path)
    if step_type == StepType.QUESTION:
        errors += _question(config, path, check_message)
    elif step_type == StepType.SET_VARIABLE:
        assignments = config.get("set")
        if "set" in config and (not isinstance(assignments, dict) or not assignments):
            errors.append(
                ConfigError(_join(path, "set"), "must be a non-empty object {name: value}")
            )
        elif isinstance(assignments, dict):
            for name, value in assignments.items():
                errors += _identifier(name, _join(path, f"set.{name}"))
                if isinstance(value, str):
                    errors += _text_errors(value, _join(path, f"set.{name}"), required=False)
    elif step_type == StepType.ACTION:
        if "action" in config and (not isinstance(config["action"], str) or not config["action"]):
            errors.append(ConfigError(_join(path, "action"), "must be a registered action name"))
        if "params" in config and not isinstance(config["params"], dict):
            errors.append(ConfigError(_join(path, "params"), "must be an object"))
        if "save_as" in config:
            errors += _identifier(config["save_as"], _join(path, "save_as"))
    elif step_type == StepType.START_FLOW:
        if "flow" in config and (not isinstance(config["flow"], str) or not config["flow"]):
            errors.append(ConfigError(_join(path, "flow"), "must be a flow name"))
    elif step_type in (StepType.HANDOVER, StepType.END):
        errors += _text_errors(config.get("message"), _join(path, "message"), required=False)
    return errors


def validate_flow_structure(flow: Mapping[str, Any], *, path: str = "") -> list[ConfigError]:
    """Flow-level rules: one entry step, unique names, known targets, defaults, no loops."""
    errors: list[ConfigError] = []
    steps = flow.get("steps")
    if not isinstance(steps, list):
        return [ConfigError(_join(path, "steps"), "must be a list", "steps")]
    names: dict[str, int] = {}
    for index, step in enumerate(steps):
        if isinstance(step, dict) and isinstance(step.get("name"), str):
            if step["name"] in names:
                errors.append(
                    ConfigError(
                        _join(path, f"steps[{index}].name"),
                        f"step name {step['name']!r} is used twice",
                        "duplicate",
                    )
                )
            names.setdefault(step["name"], index)
    entries = [s for s in steps if isinstance(s, dict) and s.get("entry")]
    if len(entries) != 1:
        errors.append(
            ConfigError(
                _join(path, "steps"),
                f"a flow needs exactly one entry step; found {len(entries)}",
                "entry",
            )
        )
    step_types: dict[str, str] = {}
    edges: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("name"), str):
            continue
        spath = _join(path, f"steps[{index}]")
        step_types[step["name"]] = step.get("type", "")
        transitions = step.get("transitions") or []
        if not isinstance(transitions, list):
            errors.append(ConfigError(_join(spath, "transitions"), "must be a list"))
            continue
        targets = []
        for tindex, transition in enumerate(transitions):
            tpath = _join(spath, f"transitions[{tindex}]")
            if not isinstance(transition, dict):
                errors.append(ConfigError(tpath, "must be an object {to, condition}"))
                continue
            target = transition.get("to")
            if target not in names:
                errors.append(
                    ConfigError(
                        _join(tpath, "to"), f"no step named {target!r} in this flow", "target"
                    )
                )
            else:
                targets.append(target)
        edges[step["name"]] = targets
        kind = step.get("type")
        if kind in TERMINAL_STEPS and transitions:
            errors.append(
                ConfigError(
                    _join(spath, "transitions"),
                    f"{kind} step {step['name']!r} ends the run; it cannot have transitions",
                    "terminal",
                )
            )
        if kind == StepType.CONDITION and not any(
            isinstance(t, dict) and is_default(t.get("condition")) for t in transitions
        ):
            errors.append(
                ConfigError(
                    _join(spath, "transitions"),
                    f"condition step {step['name']!r} needs a default transition "
                    "(an empty condition)",
                    "no_default",
                )
            )
    cycle = find_automatic_cycle(step_types, edges)
    if cycle:
        errors.append(
            ConfigError(
                _join(path, "steps"),
                "loop of automatic steps (nothing waits for the customer): " + " -> ".join(cycle),
                "loop",
            )
        )
    return errors


def validate_flow(
    flow: Any,
    *,
    path: str = "",
    check_message: MessageCheck | None = None,
    known_flows: set[str] | None = None,
) -> list[ConfigError]:
    """Every error of one flow (fields, steps, configs, conditions, structure)."""
    if not isinstance(flow, dict):
        return [ConfigError(path, "must be an object")]
    errors: list[ConfigError] = []
    name = flow.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        errors.append(
            ConfigError(_join(path, "name"), f"is required (at most {NAME_MAX} characters)")
        )
    for key in ("active", "is_default"):
        if key in flow and not isinstance(flow[key], bool):
            errors.append(ConfigError(_join(path, key), "must be true or false"))
    if "priority" in flow and (
        isinstance(flow["priority"], bool) or not isinstance(flow["priority"], int)
    ):
        errors.append(ConfigError(_join(path, "priority"), "must be an integer"))
    timeout = flow.get("idle_timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0
    ):
        errors.append(
            ConfigError(_join(path, "idle_timeout_seconds"), "must be a positive integer or null")
        )
    keywords = flow.get("trigger_keywords", [])
    if not isinstance(keywords, list) or not all(
        isinstance(k, str) and k.strip() for k in keywords
    ):
        errors.append(
            ConfigError(_join(path, "trigger_keywords"), "must be a list of non-empty strings")
        )
    for key in ("description", "timeout_message"):
        if key in flow and not isinstance(flow[key], str):
            errors.append(ConfigError(_join(path, key), "must be a string"))
    if "timeout_message" in flow:
        errors += _text_errors(
            flow["timeout_message"], _join(path, "timeout_message"), required=False
        )
    steps = flow.get("steps")
    if not isinstance(steps, list):
        return [*errors, ConfigError(_join(path, "steps"), "must be a list")]
    for index, step in enumerate(steps):
        spath = _join(path, f"steps[{index}]")
        if not isinstance(step, dict):
            errors.append(ConfigError(spath, "must be an object"))
            continue
        sname = step.get("name")
        if not isinstance(sname, str) or not sname.strip() or len(sname) > NAME_MAX:
            errors.append(
                ConfigError(_join(spath, "name"), f"is required (at most {NAME_MAX} characters)")
            )
        kind = step.get("type")
        if not isinstance(kind, str) or kind not in STEP_KEYS:  # a list is not hashable
            errors.append(
                ConfigError(_join(spath, "type"), f"must be one of {', '.join(STEP_KEYS)}")
            )
            continue
        errors += validate_step_config(
            kind, step.get("config", {}), path=_join(spath, "config"), check_message=check_message
        )
        if kind == StepType.START_FLOW and known_flows is not None:
            target = (step.get("config") or {}).get("flow")
            if isinstance(target, str) and target and target not in known_flows:
                errors.append(ConfigError(_join(spath, "config.flow"), f"no flow named {target!r}"))
        for tindex, transition in enumerate(step.get("transitions") or []):
            if isinstance(transition, dict):
                errors += [
                    ConfigError(p, m)
                    for p, m in validate_condition(
                        transition.get("condition"),
                        _join(spath, f"transitions[{tindex}].condition"),
                    )
                ]
    return errors + validate_flow_structure(flow, path=path)
