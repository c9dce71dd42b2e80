"""Operator actions on failed work: replay failed sends and parked inbound messages.

The replays themselves belong to their apps (meta_integration.services.outbound_replay,
flows' inbound_replay): this module calls them, reports what they answered, and records who
asked in the admin log.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any

from django.db import transaction

from meta_integration import services as meta_services
from meta_integration.models import InboundMessage, OutboundMessage
from whatsappcrm_backend.console.pages_common import log_operator_action

logger = logging.getLogger(__name__)

# Where flows may define `inbound_replay(ids)`; the first module that has it wins.
INBOUND_REPLAY_MODULES = (
    "flows.services",
    "flows.services.processing",
    "flows.services.parking",
    "flows.services.replay",
    "flows.services.inbound",
)


class ReplayUnavailable(RuntimeError):
    pass


def describe(result: Any) -> str:
    """A replay service's answer in words (a count, or a richer object with counts)."""
    if isinstance(result, bool) or result is None:
        return str(result)
    if isinstance(result, int):
        text = f"{int(result)} re-queued"
        refused = getattr(result, "refused", ())
        if refused:
            # meta_integration.services.ReplayResult: rows Meta acknowledged are never resent.
            shown = ", ".join(str(pk) for pk in refused[:20])
            text += f"; {len(refused)} refused because Meta acknowledged them ({shown})"
        return text
    if isinstance(result, dict):
        return ", ".join(f"{key}: {value}" for key, value in result.items())
    as_dict = getattr(result, "as_dict", None)
    if callable(as_dict):
        return describe(as_dict())
    return str(result)


def call_with_ids(service: Callable[..., Any], ids: list[int]) -> Any:
    """Call `service(ids)` or `service(ids=ids)`, whichever its signature takes."""
    params = list(inspect.signature(service).parameters.values())
    if params and params[0].kind is inspect.Parameter.KEYWORD_ONLY:
        return service(ids=ids)
    return service(ids)


def _reprs(model: type, ids: list[int]) -> list[tuple[int, str]]:
    found = {row.pk: str(row) for row in model.objects.filter(pk__in=ids).defer("payload")}
    return [(pk, found[pk]) for pk in ids if pk in found]


@transaction.atomic
def sends_replay(*, ids: Iterable[int], user_id: int) -> str:
    """Replay failed sends through meta_integration's own service (it decides which rows may
    go again: only `failed` ones, and not those Meta already acknowledged)."""
    ids = sorted({int(pk) for pk in ids})
    if not ids:
        return "nothing selected"
    result = call_with_ids(meta_services.outbound_replay, ids)
    summary = describe(result)
    log_operator_action(
        user_id=user_id,
        model=OutboundMessage,
        objects=_reprs(OutboundMessage, ids),
        message=f"Replay from the console: {summary}",
    )
    logger.info("operator %s replayed %s send(s): %s", user_id, len(ids), summary)
    return summary


def inbound_replay_service() -> Callable[[list[int]], Any]:
    for name in INBOUND_REPLAY_MODULES:
        try:
            module = import_module(name)
        except ImportError:
            continue
        service = getattr(module, "inbound_replay", None)
        if callable(service):
            return service
    raise ReplayUnavailable(
        "replaying parked inbound messages needs flows' inbound_replay(ids), which this "
        "installation does not have yet: nothing was replayed"
    )


@transaction.atomic
def inbound_replay(*, ids: Iterable[int], user_id: int) -> str:
    ids = sorted({int(pk) for pk in ids})
    if not ids:
        return "nothing selected"
    service = inbound_replay_service()
    result = call_with_ids(service, ids)
    summary = describe(result)
    log_operator_action(
        user_id=user_id,
        model=InboundMessage,
        objects=_reprs(InboundMessage, ids),
        message=f"Replay of parked message from the console: {summary}",
    )
    logger.info("operator %s replayed %s parked inbound: %s", user_id, len(ids), summary)
    return summary
