"""The action registry: Python callables that flows run by name from an `action` step.

Other apps add to it at import time (import the module from their AppConfig.ready()):

    from flows.actions import ActionCall, ActionResult, register

    @register("football.fixtures")
    def fixtures(call: ActionCall) -> ActionResult:
        rows = upcoming_fixtures(limit=call.params.get("limit", 10))
        return ActionResult(context={"count": len(rows)}, messages=[{"type": "list", ...}])

The callable gets an ActionCall (name, params from the step config, a copy of the session
context, the contact's id/wa_id/profile_name/name, and the inbound message as a dict) and
returns an ActionResult, a plain dict (taken as its context) or None. It runs inside the flow
transaction, in its own savepoint: raising, returning ok=False, or not being registered takes
the step's `action_failed` transition (or ends the session with a polite message), never a
crash. Keep actions fast: the customer is waiting for the reply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flows.engine.types import ActionCall, ActionFunc, ActionResult

logger = logging.getLogger(__name__)

__all__ = ["ActionCall", "ActionResult", "register", "registered_actions", "unregister"]

_REGISTRY: dict[str, ActionFunc] = {}


def register(name: str, *, replace: bool = False) -> Callable[[ActionFunc], ActionFunc]:
    """Decorator: register `func` under `name` (e.g. "football.fixtures")."""
    if not name or not isinstance(name, str):
        raise ValueError("an action needs a non-empty name")

    def decorator(func: ActionFunc) -> ActionFunc:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not func and not replace:
            raise ValueError(f"action {name!r} is already registered by {existing!r}")
        _REGISTRY[name] = func
        logger.debug("flow action %s registered", name)
        return func

    return decorator


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered_actions() -> Mapping[str, ActionFunc]:
    """A snapshot of the registry (what the engine is handed)."""
    return dict(_REGISTRY)
