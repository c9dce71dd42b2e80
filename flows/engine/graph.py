"""Loops in flow graphs: cycles made only of automatic steps would run without end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flows.engine.types import AUTOMATIC_STEPS, StepType


def find_automatic_cycle(
    step_types: Mapping[str, str], edges: Mapping[str, Sequence[str]]
) -> list[str] | None:
    """A cycle made only of automatic steps (each would run the next without waiting), if any.

    Cycles through a question are fine: the question waits for the customer.
    """
    automatic = {name for name, kind in step_types.items() if kind in AUTOMATIC_STEPS}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in automatic:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(automatic):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def find_cross_flow_cycle(flows: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """A loop of automatic steps that crosses flows through start_flow steps, if any.

    Nodes are "flow:step"; a start_flow step leads to its target's entry step. Loops inside
    one flow are reported by validate_flow_structure, so only loops spanning flows count here.
    """
    step_types: dict[str, str] = {}
    edges: dict[str, list[str]] = {}
    entries: dict[str, str] = {}
    for flow in flows:
        if not isinstance(flow, Mapping) or not isinstance(flow.get("steps"), list):
            continue
        for step in flow["steps"]:
            if isinstance(step, Mapping) and isinstance(step.get("name"), str):
                step_types[f"{flow.get('name')}:{step['name']}"] = str(step.get("type", ""))
                if step.get("entry"):
                    entries[str(flow.get("name"))] = f"{flow.get('name')}:{step['name']}"
    for flow in flows:
        if not isinstance(flow, Mapping) or not isinstance(flow.get("steps"), list):
            continue
        for step in flow["steps"]:
            if not isinstance(step, Mapping) or not isinstance(step.get("name"), str):
                continue
            node = f"{flow.get('name')}:{step['name']}"
            targets = [
                f"{flow.get('name')}:{t.get('to')}"
                for t in step.get("transitions") or []
                if isinstance(t, Mapping)
            ]
            config = step.get("config")
            if step.get("type") == StepType.START_FLOW and isinstance(config, Mapping):
                entry = entries.get(str(config.get("flow")))
                if entry:
                    targets.append(entry)
            edges[node] = targets
    cycle = find_automatic_cycle(step_types, edges)
    if cycle and len({node.split(":", 1)[0] for node in cycle}) > 1:
        return cycle
    return None
