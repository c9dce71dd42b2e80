"""The pure flow engine: no Django, no I/O, tested in microseconds.

    outcome = handle_message(definitions, state, message, contact, actions=registry)

`definitions` comes from `compile_definitions(flow_data)`; `state` is the contact's active
session (or None); the outcome holds the sessions touched and the actions to perform.
"""

from __future__ import annotations

from flows.engine.answers import accept_answer, choice_options
from flows.engine.conditions import evaluate, validate_condition
from flows.engine.graph import find_automatic_cycle, find_cross_flow_cycle
from flows.engine.runtime import (
    compile_definitions,
    handle_message,
    parse_global_commands,
)
from flows.engine.text import find_trigger, keyword_matches, normalize, render
from flows.engine.types import (
    AUTOMATIC_STEPS,
    DEFAULT_TEXTS,
    MAX_CHAIN_STEPS,
    ActionCall,
    ActionFunc,
    ActionResult,
    Message,
    Options,
    Outcome,
    SessionState,
    SessionStatus,
    StepType,
)
from flows.engine.validation import (
    ConfigError,
    validate_flow,
    validate_flow_structure,
    validate_message,
    validate_step_config,
)

__all__ = [
    "AUTOMATIC_STEPS",
    "DEFAULT_TEXTS",
    "MAX_CHAIN_STEPS",
    "ActionCall",
    "ActionFunc",
    "ActionResult",
    "ConfigError",
    "Message",
    "Options",
    "Outcome",
    "SessionState",
    "SessionStatus",
    "StepType",
    "accept_answer",
    "choice_options",
    "compile_definitions",
    "evaluate",
    "find_automatic_cycle",
    "find_cross_flow_cycle",
    "find_trigger",
    "handle_message",
    "keyword_matches",
    "normalize",
    "parse_global_commands",
    "render",
    "validate_condition",
    "validate_flow",
    "validate_flow_structure",
    "validate_message",
    "validate_step_config",
]
