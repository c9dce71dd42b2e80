"""The pure engine, step type by step type (no database, no Redis: microseconds each)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.engine import (
    ActionResult,
    Message,
    Options,
    SessionState,
    SessionStatus,
    compile_definitions,
    parse_global_commands,
)
from flows.messages import check_message
from tests.flows.engine_helpers import bodies, definitions, run, tap, text

BUTTONS = {
    "type": "buttons",
    "body": "Pick one",
    "buttons": [{"id": "a", "title": "Alpha"}, {"id": "b", "title": "Beta"}],
}


def question(name: str, expect: str = "text", **config):
    prompt = config.pop("prompt", {"type": "text", "body": f"{name}?"})
    return {
        "name": name,
        "type": "question",
        "config": {"prompt": prompt, "expect": expect, "save_as": name, **config},
        "transitions": config.pop("transitions", []),
    }


def send(name: str, body: str, to: str | None = None):
    return {
        "name": name,
        "type": "send",
        "config": {"type": "text", "body": body},
        "transitions": [{"to": to, "condition": {}}] if to else [],
    }


# --- send ---------------------------------------------------------------------------------


def test_send_steps_chain_and_the_flow_completes():
    defs = definitions(
        {"name": "f", "steps": [send("one", "first", "two"), send("two", "second")]}, default="f"
    )
    outcome = run(defs, text("hello"))
    assert bodies(outcome) == ["first", "second"]
    [session] = outcome.sessions
    assert session.status == SessionStatus.COMPLETED
    assert outcome.state is None


@pytest.mark.parametrize(
    "spec",
    [
        BUTTONS,
        {
            "type": "list",
            "body": "Choose",
            "button": "Open",
            "sections": [{"title": "S", "rows": [{"id": "r1", "title": "Row 1"}]}],
        },
        {"type": "template", "name": "hello_world", "language": "en_US", "params": ["{{ name }}"]},
    ],
)
def test_send_step_emits_each_message_type(spec):
    defs = definitions(
        {"name": "f", "steps": [{"name": "s", "type": "send", "config": spec}]}, default="f"
    )
    [message] = run(defs, text("x")).sends
    assert message["type"] == spec["type"]
    if spec["type"] == "template":
        assert message["params"] == ["Sheena"]  # template parameters are rendered too


# --- question -----------------------------------------------------------------------------


def test_question_prompts_then_saves_the_answer_and_moves_on():
    defs = definitions(
        {
            "name": "f",
            "steps": [
                {**question("name"), "transitions": [{"to": "bye", "condition": {}}]},
                send("bye", "Bye {{ context.name }}"),
            ],
        },
        default="f",
    )
    first = run(defs, text("hi"))
    assert bodies(first) == ["name?"]
    assert first.state.step == "name"
    second = run(defs, text("Jane"), first.state)
    assert bodies(second) == ["Bye Jane"]
    assert second.sessions[-1].context == {"name": "Jane"}


@pytest.mark.parametrize(
    ("expect", "config", "answer", "stored"),
    [
        ("number", {}, "42", 42),
        ("number", {}, "3,5", 3.5),
        ("number", {"min": 1, "max": 10}, "11", None),
        ("number", {}, "forty", None),
        ("email", {}, "Jane@Example.COM", "Jane@example.com"),
        ("email", {}, "jane@", None),
        ("email", {}, "not an email", None),
        ("phone", {}, "+1 (650) 555-1234", "16505551234"),
        ("phone", {}, "0044 20 7946 0958", "442079460958"),
        ("phone", {}, "12", None),
        ("regex", {"pattern": r"[A-Z]{3}-\d{3}"}, "ABC-123", "ABC-123"),
        ("regex", {"pattern": r"[A-Z]{3}-\d{3}"}, "ABC-123x", None),
        ("text", {"max_length": 5}, "toolong", None),
        ("text", {}, "   ", None),
    ],
)
def test_question_expected_types(expect, config, answer, stored):
    defs = definitions({"name": "f", "steps": [question("q", expect, **config)]}, default="f")
    state = run(defs, text("start")).state
    outcome = run(defs, text(answer), state)
    if stored is None:
        assert outcome.state.attempts == 1, "an invalid answer re-prompts"
        assert "q" not in outcome.state.context
    else:
        assert outcome.sessions[-1].context["q"] == stored


@pytest.mark.parametrize(
    "message",
    [tap("b", "Beta"), text("beta"), text("BETA"), text("2"), text("b")],
    ids=["reply-id", "title", "title-case", "position", "id-typed"],
)
def test_choice_accepts_reply_id_title_or_position(message):
    defs = definitions(
        {"name": "f", "steps": [question("q", "choice", prompt=BUTTONS)]}, default="f"
    )
    state = run(defs, text("start")).state
    assert run(defs, message, state).sessions[-1].context["q"] == "b"


def test_choice_from_a_list_and_an_unknown_choice():
    spec = {
        "type": "list",
        "body": "Choose",
        "button": "Open",
        "sections": [
            {"title": "S", "rows": [{"id": "r1", "title": "Row 1"}, {"id": "r2", "title": "Row 2"}]}
        ],
    }
    defs = definitions({"name": "f", "steps": [question("q", "choice", prompt=spec)]}, default="f")
    state = run(defs, text("start")).state
    assert run(defs, tap("r2"), state).sessions[-1].context["q"] == "r2"
    assert run(defs, tap("zz"), state).state.attempts == 1


def test_location_question():
    defs = definitions({"name": "f", "steps": [question("where", "location")]}, default="f")
    state = run(defs, text("start")).state
    pin = Message(type="location", location={"latitude": 1.5, "longitude": 2.5})
    assert run(defs, pin, state).sessions[-1].context["where"] == {
        "latitude": 1.5,
        "longitude": 2.5,
    }
    assert run(defs, text("here"), state).state.attempts == 1


def test_invalid_answer_reprompts_in_one_message_then_falls_back_to_end():
    defs = definitions(
        {
            "name": "f",
            "steps": [
                question(
                    "age",
                    "number",
                    invalid_message="Digits please.",
                    max_retries=1,
                    fallback={"action": "end", "message": "Giving up."},
                )
            ],
        },
        default="f",
    )
    state = run(defs, text("start")).state
    first = run(defs, text("ten"), state)
    assert bodies(first) == ["Digits please.\n\nage?"]
    second = run(defs, text("eleven"), first.state)
    assert bodies(second) == ["Giving up."]
    assert second.sessions[-1].status == SessionStatus.CANCELLED
    assert second.state is None


def test_invalid_answer_fallback_can_hand_over():
    defs = definitions(
        {
            "name": "f",
            "steps": [question("q", "email", max_retries=0, fallback={"action": "handover"})],
        },
        default="f",
    )
    state = run(defs, text("start")).state
    outcome = run(defs, text("nope"), state)
    assert outcome.handover
    assert outcome.sessions[-1].status == SessionStatus.HANDED_OVER
    assert bodies(outcome) == [Options().text("invalid_fallback")]


# --- condition ----------------------------------------------------------------------------


def branching(condition):
    return definitions(
        {
            "name": "f",
            "steps": [
                {**question("q", "text"), "transitions": [{"to": "check", "condition": {}}]},
                {
                    "name": "check",
                    "type": "condition",
                    "transitions": [
                        {"to": "yes", "condition": condition},
                        {"to": "no", "condition": {}},
                    ],
                },
                send("yes", "YES"),
                send("no", "NO"),
            ],
        },
        default="f",
    )


@pytest.mark.parametrize(
    ("condition", "answer", "expected"),
    [
        ({"op": "equals", "var": "context.q", "value": "Gold"}, "gold", "YES"),
        ({"op": "equals", "var": "context.q", "value": "gold"}, "silver", "NO"),
        ({"op": "not_equals", "var": "context.q", "value": "gold"}, "silver", "YES"),
        ({"op": "in", "var": "text", "values": ["a", "b"]}, "B", "YES"),
        ({"op": "contains", "var": "text", "value": "refund"}, "I want a REFUND now", "YES"),
        ({"op": "contains", "var": "text", "value": "hi"}, "this", "NO"),
        ({"op": "regex", "var": "text", "pattern": r"^\d{4}$"}, "2024", "YES"),
        ({"op": "regex", "var": "text", "pattern": r"^\d{4}$"}, "20245", "NO"),
        ({"op": "gt", "var": "context.q", "value": 18}, "21", "YES"),
        ({"op": "lte", "var": "context.q", "value": 18}, "21", "NO"),
        ({"op": "gt", "var": "context.q", "value": 18}, "abc", "NO"),
        ({"op": "exists", "var": "context.q"}, "x", "YES"),
        ({"op": "not_exists", "var": "context.missing"}, "x", "YES"),
        ({"op": "message_type", "value": "text"}, "x", "YES"),
        ({"op": "equals", "var": "contact.profile_name", "value": "sheena"}, "x", "YES"),
        (
            {
                "all": [
                    {"op": "exists", "var": "context.q"},
                    {"op": "equals", "var": "text", "value": "x"},
                ]
            },
            "x",
            "YES",
        ),
        (
            {
                "any": [
                    {"op": "equals", "var": "text", "value": "y"},
                    {"op": "equals", "var": "text", "value": "z"},
                ]
            },
            "x",
            "NO",
        ),
        ({"not": {"op": "equals", "var": "text", "value": "y"}}, "x", "YES"),
    ],
)
def test_condition_branches(condition, answer, expected):
    defs = branching(condition)
    state = run(defs, text("start")).state
    assert bodies(run(defs, text(answer), state)) == [expected]


def test_condition_on_reply_id_and_message_type():
    defs = definitions(
        {
            "name": "f",
            "steps": [
                {
                    "name": "route",
                    "type": "condition",
                    "transitions": [
                        {"to": "btn", "condition": {"op": "reply_id", "value": "b1"}},
                        {"to": "img", "condition": {"op": "message_type", "value": "image"}},
                        {"to": "other", "condition": {}},
                    ],
                },
                send("btn", "button"),
                send("img", "image"),
                send("other", "other"),
            ],
        },
        default="f",
    )
    assert bodies(run(defs, tap("b1"))) == ["button"]
    assert bodies(run(defs, Message(type="image"))) == ["image"]
    assert bodies(run(defs, text("hi"))) == ["other"]


def test_transitions_are_evaluated_in_order_first_match_wins():
    defs = branching({"op": "exists", "var": "context.q"})
    state = run(defs, text("start")).state
    assert bodies(run(defs, text("anything"), state)) == ["YES"]


# --- set_variable, action -----------------------------------------------------------------


def test_set_variable_renders_placeholders_once():
    defs = definitions(
        {
            "name": "f",
            "steps": [
                {**question("q"), "transitions": [{"to": "set", "condition": {}}]},
                {
                    "name": "set",
                    "type": "set_variable",
                    "config": {"set": {"greeting": "Hello {{ context.q }}", "count": 3}},
                    "transitions": [{"to": "show", "condition": {}}],
                },
                send("show", "{{ context.greeting }} x{{ context.count }}"),
            ],
        },
        default="f",
    )
    state = run(defs, text("start")).state
    outcome = run(defs, text("{{ context.count }}"), state)
    assert bodies(outcome) == ["Hello {{ context.count }} x3"]


def action_flow(with_branch: bool = True):
    transitions = [{"to": "ok", "condition": {}}]
    if with_branch:
        transitions.insert(0, {"to": "failed", "condition": {"op": "action_failed"}})
    return definitions(
        {
            "name": "f",
            "steps": [
                {
                    "name": "act",
                    "type": "action",
                    "config": {"action": "demo.act", "params": {"n": 2}, "save_as": "result"},
                    "transitions": transitions,
                },
                send("ok", "ok {{ context.result.value }}"),
                send("failed", "failed"),
            ],
        },
        default="f",
    )


def test_action_result_lands_in_context_and_its_messages_are_sent_verbatim():
    calls = []

    def act(call):
        calls.append(call)
        call.context["tamper"] = True  # a copy: the session is unaffected
        return ActionResult(
            context={"value": call.params["n"] * 21},
            messages=[{"type": "text", "body": "raw {{ name }}"}],
        )

    outcome = run(action_flow(), text("go"), actions={"demo.act": act})
    assert bodies(outcome) == ["raw {{ name }}", "ok 42"]
    assert outcome.sessions[-1].context == {"result": {"value": 42}}
    assert calls[0].contact["wa_id"] == "16505551234"
    assert calls[0].message["text"] == "go"


def test_action_returning_a_dict_merges_without_save_as():
    defs = definitions(
        {
            "name": "f",
            "steps": [
                {
                    "name": "act",
                    "type": "action",
                    "config": {"action": "a"},
                    "transitions": [{"to": "s", "condition": {}}],
                },
                send("s", "{{ context.x }}"),
            ],
        },
        default="f",
    )
    assert bodies(run(defs, text("go"), actions={"a": lambda call: {"x": "merged"}})) == ["merged"]


def boom(call):
    raise RuntimeError("database on fire")


@pytest.mark.parametrize(
    "actions",
    [
        {},
        {"demo.act": boom},
        {"demo.act": lambda call: ActionResult(ok=False, error="no fixtures")},
        {"demo.act": lambda call: {"when": object()}},
        {"demo.act": lambda call: 42},
    ],
    ids=["unknown", "raises", "not-ok", "not-json", "wrong-type"],
)
def test_failing_or_unknown_action_takes_the_error_branch(actions):
    outcome = run(action_flow(), text("go"), actions=actions)
    assert bodies(outcome) == ["failed"]
    assert any(level in ("warning", "error") for level, _ in outcome.logs)


def test_action_failed_applies_only_to_the_action_steps_own_transitions():
    defs = definitions(
        {
            "name": "f",
            "steps": [
                {
                    "name": "act",
                    "type": "action",
                    "config": {"action": "missing"},
                    "transitions": [{"to": "check", "condition": {"op": "action_failed"}}],
                },
                {
                    "name": "check",
                    "type": "condition",
                    "transitions": [
                        {"to": "again", "condition": {"op": "action_failed"}},
                        {"to": "done", "condition": {}},
                    ],
                },
                send("again", "still failed"),
                send("done", "recovered"),
            ],
        },
        default="f",
    )
    assert bodies(run(defs, text("go"))) == ["recovered"]


def test_failing_action_without_an_error_branch_ends_politely():
    outcome = run(action_flow(with_branch=False), text("go"), actions={"demo.act": boom})
    assert bodies(outcome) == [Options().text("action_unavailable")]
    assert outcome.sessions[-1].status == SessionStatus.CANCELLED


# --- handover, end, start_flow -------------------------------------------------------------


def test_handover_step():
    defs = definitions(
        {
            "name": "f",
            "steps": [
                {"name": "h", "type": "handover", "config": {"message": "A human will answer."}}
            ],
        },
        default="f",
    )
    outcome = run(defs, text("help"))
    assert bodies(outcome) == ["A human will answer."]
    assert outcome.handover
    assert outcome.state.status == SessionStatus.HANDED_OVER


def test_end_step_and_start_flow():
    defs = definitions(
        {
            "name": "menu",
            "steps": [{"name": "jump", "type": "start_flow", "config": {"flow": "other"}}],
        },
        {
            "name": "other",
            "steps": [{"name": "bye", "type": "end", "config": {"message": "Bye {{ name }}"}}],
        },
        default="menu",
    )
    outcome = run(defs, text("hi"))
    assert bodies(outcome) == ["Bye Sheena"]
    assert [(s.flow, s.status) for s in outcome.sessions] == [
        ("menu", SessionStatus.COMPLETED),
        ("other", SessionStatus.COMPLETED),
    ]


# --- triggers, commands, robustness --------------------------------------------------------


def test_triggers_pick_the_highest_priority_flow_and_fall_back_to_default():
    defs = definitions(
        {"name": "main", "steps": [send("s", "main")]},
        {"name": "low", "priority": 1, "trigger_keywords": ["price"], "steps": [send("s", "low")]},
        {
            "name": "high",
            "priority": 5,
            "trigger_keywords": ["price list"],
            "steps": [send("s", "high")],
        },
        default="main",
    )
    assert bodies(run(defs, text("Send me the PRICE LIST please"))) == ["high"]
    assert bodies(run(defs, text("price?"))) == ["low"]
    assert bodies(run(defs, text("priceless"))) == ["main"]


def test_no_trigger_and_no_default_means_no_reply():
    defs = definitions({"name": "kw", "trigger_keywords": ["go"], "steps": [send("s", "x")]})
    outcome = run(defs, text("hello"))
    assert outcome.actions == [] and outcome.sessions == []


def test_triggers_do_not_interrupt_an_active_session():
    defs = definitions(
        {"name": "main", "steps": [question("q")]},
        {"name": "other", "trigger_keywords": ["price"], "steps": [send("s", "other")]},
        default="main",
    )
    state = run(defs, text("hi")).state
    outcome = run(defs, text("price"), state)
    assert outcome.sessions[-1].context == {"q": "price"}


def test_global_commands_menu_and_cancel():
    defs = definitions(
        {"name": "main", "steps": [question("q")]},
        {"name": "form", "trigger_keywords": ["form"], "steps": [question("email", "email")]},
        default="main",
    )
    in_form = run(defs, text("form")).state
    menu = run(defs, text("  MENU! "), in_form)
    assert [(s.flow, s.status) for s in menu.sessions] == [
        ("form", SessionStatus.CANCELLED),
        ("main", SessionStatus.ACTIVE),
    ]
    assert bodies(menu) == ["q?"]
    cancelled = run(defs, text("Cancel"), in_form)
    assert cancelled.sessions[-1].status == SessionStatus.CANCELLED
    assert bodies(cancelled) == [Options().text("cancelled")]
    assert bodies(run(defs, text("cancel"))) == [Options().text("nothing_to_cancel")]
    # A button whose reply id is a command runs the command.
    assert run(defs, tap("menu", "Main menu"), in_form).sessions[-1].flow == "main"


def test_a_choice_whose_id_is_a_command_runs_it_even_when_typed():
    prompt = {
        "type": "buttons",
        "body": "Pick",
        "buttons": [{"id": "a", "title": "Alpha"}, {"id": "menu", "title": "Main menu"}],
    }
    defs = definitions(
        {"name": "main", "steps": [question("q")]},
        {
            "name": "sub",
            "trigger_keywords": ["sub"],
            "steps": [question("pick", "choice", prompt=prompt)],
        },
        default="main",
    )
    in_sub = run(defs, text("sub")).state
    for typed in (text("2"), text("main MENU")):
        outcome = run(defs, typed, in_sub)
        assert [(s.flow, s.status) for s in outcome.sessions] == [
            ("sub", SessionStatus.CANCELLED),
            ("main", SessionStatus.ACTIVE),
        ]


def test_global_commands_are_configurable_with_aliases():
    options = Options(
        global_commands=parse_global_commands(["menu", "inicio=menu", "stop=cancel", "x=bogus"])
    )
    assert dict(options.global_commands) == {"menu": "menu", "inicio": "menu", "stop": "cancel"}
    defs = definitions({"name": "main", "steps": [question("q")]}, default="main")
    state = run(defs, text("hi")).state
    menu = run(defs, text("Início"), state, options=options)
    assert [s.status for s in menu.sessions] == [SessionStatus.CANCELLED, SessionStatus.ACTIVE]
    assert (
        run(defs, text("stop"), state, options=options).sessions[-1].ended_reason
        == "cancel command"
    )


def test_menu_without_default_flow():
    defs = definitions({"name": "kw", "trigger_keywords": ["go"], "steps": [send("s", "x")]})
    assert bodies(run(defs, text("menu"))) == [Options().text("no_menu")]


def test_runtime_loop_guard_ends_the_session_with_an_error_log():
    # Compiled without validation (validation would refuse this): a -> b -> a, all automatic.
    defs = definitions(
        {"name": "loop", "steps": [send("a", "a", "b"), send("b", "b", "a")]}, default="loop"
    )
    outcome = run(defs, text("hi"), options=Options(max_chain_steps=10))
    assert len(outcome.sends) == 11  # 10 steps, then the error message
    assert outcome.sends[-1]["body"] == Options().text("error")
    assert outcome.sessions[-1].status == SessionStatus.CANCELLED
    assert any(level == "error" and "loop" in msg for level, msg in outcome.logs)


def test_session_at_a_missing_step_restarts_cleanly():
    defs = definitions({"name": "main", "steps": [question("q")]}, default="main")
    stale = SessionState(flow="main", step="deleted", id=7)
    outcome = run(defs, text("hello"), stale)
    assert [(s.id, s.status) for s in outcome.sessions] == [
        (7, SessionStatus.CANCELLED),
        (None, SessionStatus.ACTIVE),
    ]
    assert bodies(outcome) == ["q?"]


def test_the_input_state_is_never_mutated():
    defs = definitions({"name": "main", "steps": [question("q")]}, default="main")
    state = SessionState(flow="main", step="q", context={"keep": 1}, id=3)
    run(defs, text("answer"), state)
    assert state.context == {"keep": 1} and state.status == SessionStatus.ACTIVE


MESSAGES = st.one_of(
    st.builds(
        text,
        st.sampled_from(
            ["hi", "menu", "cancel", "help", "quote", "1", "2", "yes", "a@b.co", "", "Jane"]
        ),
    ),
    st.builds(text, st.text(max_size=30)),
    st.builds(
        tap,
        st.sampled_from(
            ["quote", "support", "football", "fixtures", "tickets", "menu", "yes", "change", "zzz"]
        ),
    ),
    st.sampled_from(
        [
            Message(type="image"),
            Message(type="location", location={"latitude": 1, "longitude": 2}),
            Message(type="reaction"),
        ]
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=12))
def test_demo_flows_answer_every_message_until_a_handover(messages):
    from flows.demo import DEMO_FLOWS

    defs = compile_definitions(DEMO_FLOWS["flows"])
    state = None
    for message in messages:
        outcome = run(defs, message, state)
        if message.type == "reaction":
            assert outcome.actions == [] and outcome.sessions == []  # reactions are not answered
            continue
        assert outcome.sends, f"no reply to {message!r} in state {state!r}"
        for spec in outcome.sends:
            check = check_message(spec)
            assert check == [], check
        state = outcome.state
        if state is not None and state.status == SessionStatus.HANDED_OVER:
            break


def test_the_engine_imports_no_django():
    import subprocess
    import sys

    code = (
        "import sys, flows.engine; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'meta_integration', 'celery', 'redis')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
