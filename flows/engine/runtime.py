"""The flow runner: (definitions, session state, message, contact) -> Outcome.

Pure: it reads plain data, calls only the action callables it is handed, and returns the new
session states and the actions to perform. Nothing here raises for bad data; a broken
definition ends the session with an error log instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from flows.engine.answers import accept_answer
from flows.engine.conditions import Env, evaluate
from flows.engine.text import compile_keyword, find_trigger, normalize, render, render_spec
from flows.engine.types import (
    SILENT_MESSAGE_TYPES,
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


def compile_definitions(flows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Index flow data (the export shape, plus "id" keys) for the runner.

    Triggers are compiled once here, ordered by priority (highest first) then name, so the
    per-message work is a scan of pre-tokenised keywords.
    """
    compiled: dict[str, Any] = {
        "flows": {},
        "default": None,
        "triggers": [],
        "flow_ids": {},
        "step_ids": {},
    }
    ordered: list[tuple[dict[str, Any], list[str]]] = []
    for flow in flows:
        steps: dict[str, Any] = {}
        entry = None
        for step in flow.get("steps", []):
            steps[step["name"]] = {
                "id": step.get("id"),
                "name": step["name"],
                "type": step["type"],
                "config": step.get("config") or {},
                "transitions": [
                    {"to": t["to"], "condition": t.get("condition") or {}}
                    for t in step.get("transitions") or []
                ],
            }
            if step.get("entry"):
                entry = step["name"]
            if step.get("id") is not None:
                compiled["step_ids"][step["id"]] = (flow["name"], step["name"])
        data = {
            "id": flow.get("id"),
            "name": flow["name"],
            "active": flow.get("active", True),
            "priority": flow.get("priority", 0),
            "is_default": flow.get("is_default", False),
            "idle_timeout_seconds": flow.get("idle_timeout_seconds"),
            "timeout_message": flow.get("timeout_message", ""),
            "entry": entry,
            "steps": steps,
        }
        compiled["flows"][flow["name"]] = data
        if flow.get("id") is not None:
            compiled["flow_ids"][flow["id"]] = flow["name"]
        if data["active"] and entry:
            ordered.append((data, list(flow.get("trigger_keywords") or [])))
            if data["is_default"]:
                compiled["default"] = flow["name"]
    ordered.sort(key=lambda pair: (-pair[0]["priority"], pair[0]["name"]))
    for data, keywords in ordered:
        for keyword in keywords:
            compiled["triggers"].append((compile_keyword(keyword), data["name"]))
    return compiled


def parse_global_commands(entries: Iterable[str]) -> dict[str, str]:
    """["menu", "cancel", "inicio=menu"] -> {"menu": "menu", "cancel": "cancel", "inicio": "menu"}.

    A bare word names its own command; `word=command` adds an alias. Unknown commands are
    dropped (the caller validates settings).
    """
    commands: dict[str, str] = {}
    for entry in entries:
        word, _, command = str(entry).partition("=")
        command = (command or word).strip().lower()
        if command in ("menu", "cancel") and normalize(word):
            commands[normalize(word)] = command
    return commands


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class _Run:
    def __init__(
        self,
        definitions: Mapping[str, Any],
        message: Message,
        contact: Mapping[str, Any],
        actions: Mapping[str, ActionFunc],
        options: Options,
    ) -> None:
        self.defs = definitions
        self.message = message
        self.contact = contact
        self.registry = actions
        self.options = options
        self.outcome = Outcome()
        self.steps_run = 0
        self.action_failed = False

    # --- output ---------------------------------------------------------------------------
    def log(self, level: str, text: str) -> None:
        self.outcome.logs.append((level, text))

    def touch(self, state: SessionState) -> None:
        if not any(s is state for s in self.outcome.sessions):
            self.outcome.sessions.append(state)

    def send(self, spec: Mapping[str, Any], state: SessionState | None, *, expand: bool = True):
        context = state.context if state is not None else {}
        message = render_spec(spec, contact=self.contact, context=context) if expand else dict(spec)
        self.outcome.actions.append({"type": "send", "message": message})

    def send_text(self, body: str, state: SessionState | None = None) -> None:
        if body:
            self.send({"type": "text", "body": body}, state)

    def end(self, state: SessionState, status: str, reason: str) -> None:
        state.status = status
        state.ended_reason = reason[:64]
        self.touch(state)

    def fail(self, state: SessionState, reason: str) -> None:
        self.log("error", f"flow {state.flow!r} step {state.step!r}: {reason}")
        self.end(state, SessionStatus.CANCELLED, "error")
        self.send_text(self.options.text("error"), state)

    # --- entry points ---------------------------------------------------------------------
    def handle(self, state: SessionState | None) -> Outcome:
        if self.message.type in SILENT_MESSAGE_TYPES:
            return self.outcome
        command = self.global_command()
        if command is not None:
            self.command(command, state)
            return self.outcome
        if state is not None and state.active:
            flow = self.defs["flows"].get(state.flow)
            step = flow["steps"].get(state.step) if flow else None
            if (
                flow is None
                or not flow["active"]
                or step is None
                or step["type"] != StepType.QUESTION
            ):
                # The flow was edited, deactivated or deleted under this session: close it and
                # treat the message as a fresh start rather than guessing where it belongs.
                self.log("info", f"session {state.id} left flow {state.flow!r}: definition changed")
                self.end(state, SessionStatus.CANCELLED, "flow changed")
            else:
                self.touch(state)
                self.answer(state, flow, step)
                return self.outcome
        target = find_trigger(self.defs["triggers"], (self.message.text,)) or self.defs.get(
            "default"
        )
        if target is None:
            self.log("info", "no trigger matched and no default flow: no reply")
            return self.outcome
        self.start(target)
        return self.outcome

    def command(self, command: str, state: SessionState | None) -> None:
        if command == "cancel":
            if state is not None and state.active:
                self.end(state, SessionStatus.CANCELLED, "cancel command")
                self.send_text(self.options.text("cancelled"), state)
            else:
                self.send_text(self.options.text("nothing_to_cancel"))
            return
        # "menu"
        if state is not None and state.active:
            self.end(state, SessionStatus.CANCELLED, "menu command")
        if self.defs.get("default") is None:
            self.send_text(self.options.text("no_menu"))
            return
        self.start(self.defs["default"])

    def global_command(self) -> str | None:
        commands = self.options.global_commands
        for candidate in (self.message.reply_id, self.message.text):
            word = normalize(candidate).strip(" .!?¡¿")
            if word in commands:
                return commands[word]
        return None

    def start(self, flow_name: str, context: Mapping[str, Any] | None = None) -> None:
        state = SessionState(flow=flow_name, step=None, context=dict(context or {}))
        self.touch(state)
        flow = self.defs["flows"].get(flow_name)
        if flow is None or not flow["active"] or not flow["entry"]:
            self.fail(state, f"flow {flow_name!r} is missing, inactive or has no entry step")
            return
        state.step = flow["entry"]
        self.run(state)

    # --- steps ----------------------------------------------------------------------------
    def env(self, state: SessionState) -> Env:
        return Env(self.message, state.context, self.contact, self.action_failed)

    def next_step(self, state: SessionState, step: Mapping[str, Any]) -> str | None:
        env = self.env(state)
        for transition in step["transitions"]:
            if evaluate(transition["condition"], env):
                return transition["to"]
        return None

    def advance(self, state: SessionState, step: Mapping[str, Any]) -> bool:
        """Move to the next step; False when the flow is done (no transition matched)."""
        target = self.next_step(state, step)
        if target is None:
            if step["type"] == StepType.CONDITION:
                self.log(
                    "warning", f"flow {state.flow!r} step {step['name']!r}: no transition matched"
                )
            self.end(state, SessionStatus.COMPLETED, "end of flow")
            return False
        state.step = target
        return True

    def answer(self, state: SessionState, flow: Mapping[str, Any], step: Mapping[str, Any]) -> None:
        config = step["config"]
        valid, value = accept_answer(config, self.message)
        if valid and config.get("expect") == "choice":
            command = self.options.global_commands.get(normalize(str(value)))
            if command is not None:
                # An option whose id is a command ("menu"), chosen by typing its title or
                # position rather than tapping it, runs the command too.
                self.command(command, state)
                return
        if valid:
            state.attempts = 0
            if config.get("save_as"):
                state.context[config["save_as"]] = value
            if self.advance(state, step):
                self.run(state)
            return
        state.attempts += 1
        if state.attempts > int(config.get("max_retries", 2)):
            fallback = config.get("fallback") or {}
            self.send_text(fallback.get("message") or self.options.text("invalid_fallback"), state)
            if fallback.get("action") == "handover":
                self.handover(state)
            else:
                self.end(state, SessionStatus.CANCELLED, "no valid answer")
            return
        prompt = dict(config["prompt"])
        if config.get("invalid_message"):
            # One message, not two: the hint leads the re-sent prompt (Meta's pair rate limit
            # is about one message per six seconds to the same customer).
            prompt["body"] = f"{config['invalid_message']}\n\n{prompt['body']}"
        self.send(prompt, state)

    def handover(self, state: SessionState) -> None:
        state.status = SessionStatus.HANDED_OVER
        state.ended_reason = "handover"
        self.touch(state)
        self.outcome.actions.append({"type": "handover"})

    def run(self, state: SessionState) -> None:
        """Execute the step just entered, then every automatic step after it."""
        while state.active:
            self.steps_run += 1
            if self.steps_run > self.options.max_chain_steps:
                self.fail(
                    state,
                    f"more than {self.options.max_chain_steps} steps for one message: "
                    "a loop in the flow definition",
                )
                return
            flow = self.defs["flows"].get(state.flow)
            step = flow["steps"].get(state.step) if flow else None
            if step is None:
                self.fail(state, "the current step does not exist")
                return
            kind, config = step["type"], step["config"]
            if kind == StepType.QUESTION:
                state.attempts = 0
                self.send(config["prompt"], state)
                return
            if kind == StepType.SEND:
                self.send(config, state)
            elif kind == StepType.SET_VARIABLE:
                for name, value in config.get("set", {}).items():
                    state.context[name] = (
                        render(value, contact=self.contact, context=state.context)
                        if isinstance(value, str)
                        else copy.deepcopy(value)
                    )
            elif kind == StepType.ACTION:
                if not self.action(state, step):  # it chose its own transition
                    return
                continue
            elif kind == StepType.START_FLOW:
                target = config.get("flow")
                flow_def = self.defs["flows"].get(target)
                if flow_def is None or not flow_def["active"] or not flow_def["entry"]:
                    self.fail(state, f"start_flow target {target!r} is missing or inactive")
                    return
                self.end(state, SessionStatus.COMPLETED, f"started {target}")
                state = SessionState(flow=target, step=flow_def["entry"])
                self.touch(state)
                continue
            elif kind == StepType.HANDOVER:
                self.send_text(config.get("message", ""), state)
                self.handover(state)
                return
            elif kind == StepType.END:
                self.send_text(config.get("message", ""), state)
                self.end(state, SessionStatus.COMPLETED, "end step")
                return
            elif kind != StepType.CONDITION:
                self.fail(state, f"unknown step type {kind!r}")
                return
            if not self.advance(state, step):
                return

    def action(self, state: SessionState, step: Mapping[str, Any]) -> bool:
        """Run a registered action; False when the run stopped (failure without a branch)."""
        config = step["config"]
        name = config.get("action", "")
        func = self.registry.get(name)
        result: ActionResult | None = None
        error = ""
        if func is None:
            error = f"action {name!r} is not registered"
        else:
            call = ActionCall(
                name=name,
                params=copy.deepcopy(config.get("params") or {}),
                context=copy.deepcopy(state.context),
                contact=dict(self.contact),
                message=self.message.as_dict(),
            )
            try:
                raw = func(call)
            except Exception as exc:  # noqa: BLE001 - any action failure takes the error branch
                error = f"action {name!r} raised {type(exc).__name__}: {exc}"
            else:
                result, error = _coerce_result(name, raw)
        self.action_failed = bool(error)
        if error:
            level = "warning" if func is None else "error"
            self.log(level, f"flow {state.flow!r} step {step['name']!r}: {error}")
            has_branch = any(
                (t["condition"] or {}).get("op") == "action_failed" for t in step["transitions"]
            )
            if not has_branch:
                self.end(state, SessionStatus.CANCELLED, "action failed")
                self.send_text(self.options.text("action_unavailable"), state)
                return False
        else:
            assert result is not None
            if config.get("save_as"):
                state.context[config["save_as"]] = result.context
            else:
                state.context.update(result.context)
            for spec in result.messages:
                self.send(spec, state, expand=False)
        advanced = self.advance(state, step)
        # The flag belongs to this step's transitions only, not to later steps of the chain.
        self.action_failed = False
        return advanced


def _coerce_result(name: str, raw: Any) -> tuple[ActionResult | None, str]:
    if raw is None:
        result = ActionResult()
    elif isinstance(raw, ActionResult):
        result = raw
    elif isinstance(raw, dict):
        result = ActionResult(context=raw)
    else:
        return None, f"action {name!r} returned {type(raw).__name__}, not ActionResult/dict/None"
    if not result.ok:
        return None, f"action {name!r} reported failure: {result.error or 'no reason given'}"
    if not isinstance(result.context, dict) or not _json_safe(result.context):
        return None, f"action {name!r} returned a context that is not JSON-serialisable"
    if not all(isinstance(m, dict) and m.get("type") for m in result.messages):
        return None, f"action {name!r} returned messages that are not message specs"
    return result, ""


def handle_message(
    definitions: Mapping[str, Any],
    state: SessionState | None,
    message: Message,
    contact: Mapping[str, Any],
    *,
    actions: Mapping[str, ActionFunc] | None = None,
    options: Options | None = None,
) -> Outcome:
    """Run one inbound message. `state` is the contact's active session, or None.

    The state passed in is not mutated (the outcome carries copies), so a caller that fails to
    store the outcome still holds the state it read.
    """
    working = None
    if state is not None:
        working = copy.copy(state)
        working.context = copy.deepcopy(state.context)
    run = _Run(definitions, message, contact, actions or {}, options or Options())
    return run.handle(working)
