"""Import of flow definitions (the export format), all-or-nothing.

Everything in the file is validated first and every error is reported with its JSON path
(`flows[1].steps[2].config.buttons: 4 buttons; the limit is 3`); only a valid file is written,
in one transaction. Flows are matched by name, so importing the same file twice changes nothing
the second time.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from flows.cache import bump_version
from flows.engine import ConfigError, find_cross_flow_cycle, validate_flow
from flows.messages import check_message
from flows.models import Flow, Step, Transition
from flows.selectors import EXPORT_FORMAT, EXPORT_VERSION, flow_data_list

logger = logging.getLogger(__name__)


class FlowImportError(ValueError):
    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def flows_import_validate(data: Any) -> list[ConfigError]:
    """Every error of an import document; [] when it may be imported."""
    if not isinstance(data, dict):
        return [ConfigError("", "the document must be a JSON object with a 'flows' list")]
    errors: list[ConfigError] = []
    if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        errors.append(ConfigError("format", f"must be {EXPORT_FORMAT!r}"))
    if data.get("version", EXPORT_VERSION) != EXPORT_VERSION:
        errors.append(ConfigError("version", f"unsupported version; this is {EXPORT_VERSION}"))
    flows = data.get("flows")
    if not isinstance(flows, list):
        return [*errors, ConfigError("flows", "must be a list of flows")]
    names_in_file = [f.get("name") for f in flows if isinstance(f, dict)]
    known = set(Flow.objects.values_list("name", flat=True)) | {
        n for n in names_in_file if isinstance(n, str)
    }
    seen: set[str] = set()
    defaults = []
    for index, flow in enumerate(flows):
        path = f"flows[{index}]"
        errors += validate_flow(flow, path=path, check_message=check_message, known_flows=known)
        if not isinstance(flow, dict):
            continue
        name = flow.get("name")
        if isinstance(name, str):
            if name in seen:
                errors.append(ConfigError(f"{path}.name", f"flow {name!r} appears twice"))
            seen.add(name)
        if flow.get("is_default") is True:
            defaults.append(index)
            if flow.get("active", True) is False:
                errors.append(ConfigError(f"{path}.active", "the default flow must be active"))
    if not errors:
        # start_flow steps can chain flows into a loop; check against the flows already
        # stored too (the file's version of a flow replaces the stored one).
        in_file = {f["name"] for f in flows}
        stored = [f for f in flow_data_list() if f["name"] not in in_file]
        cycle = find_cross_flow_cycle([*flows, *stored])
        if cycle:
            errors.append(
                ConfigError(
                    "flows",
                    "loop of automatic steps across flows (nothing waits for the customer): "
                    + " -> ".join(cycle),
                    "loop",
                )
            )
    if len(defaults) > 1:
        errors.append(
            ConfigError(
                f"flows[{defaults[1]}].is_default",
                f"only one default flow; flows[{defaults[0]}] is already the default",
            )
        )
    return errors


@transaction.atomic
def flows_import(*, data: Any) -> dict[str, list[str]]:
    """Create or update (by name) every flow in `data`. Raises FlowImportError, writing nothing."""
    errors = flows_import_validate(data)
    if errors:
        raise FlowImportError(errors)
    summary: dict[str, list[str]] = {"created": [], "updated": []}
    flows = data["flows"]
    default_names = [f["name"] for f in flows if f.get("is_default")]
    if default_names:
        # The file names the default flow: clear the current one first (the partial unique
        # constraint allows one default at a time).
        Flow.objects.filter(is_default=True).exclude(name=default_names[0]).update(is_default=False)
    for flow_data in flows:
        flow, created = _flow_upsert(flow_data)
        summary["created" if created else "updated"].append(flow.name)
    # .update() and bulk_create() send no signals: one explicit bump covers the whole import.
    bump_version()
    logger.info("flows imported: %s", summary)
    return summary


def _flow_upsert(data: dict[str, Any]) -> tuple[Flow, bool]:
    flow, created = Flow.objects.update_or_create(
        name=data["name"],
        defaults={
            "description": data.get("description", ""),
            "active": data.get("active", True),
            "is_default": data.get("is_default", False),
            "priority": data.get("priority", 0),
            "trigger_keywords": ", ".join(k.strip() for k in data.get("trigger_keywords", [])),
            "idle_timeout_seconds": data.get("idle_timeout_seconds"),
            "timeout_message": data.get("timeout_message", ""),
        },
    )
    names = [s["name"] for s in data["steps"]]
    Transition.objects.filter(flow=flow).delete()
    Step.objects.filter(flow=flow).exclude(name__in=names).delete()
    existing = {step.name: step for step in Step.objects.filter(flow=flow)}
    steps: dict[str, Step] = {}
    for position, step_data in enumerate(data["steps"]):
        values = {
            "step_type": step_data["type"],
            "is_entry": bool(step_data.get("entry", False)),
            "config": step_data.get("config", {}),
            "position": position,
        }
        step = existing.get(step_data["name"])
        if step is None:
            step = Step.objects.create(flow=flow, name=step_data["name"], **values)
        elif any(getattr(step, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(step, key, value)
            step.save()
        steps[step.name] = step
    Transition.objects.bulk_create(
        [
            Transition(
                flow=flow,
                from_step=steps[step_data["name"]],
                to_step=steps[transition["to"]],
                order=order,
                condition=transition.get("condition") or {},
            )
            for step_data in data["steps"]
            for order, transition in enumerate(step_data.get("transitions") or [])
        ]
    )
    return flow, created
