"""Validation of definitions: per-type config, conditions, structure and loop detection."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.engine import (
    find_automatic_cycle,
    find_cross_flow_cycle,
    validate_flow,
    validate_step_config,
)
from flows.messages import check_message


def errors_of(step_type, config):
    return [str(e) for e in validate_step_config(step_type, config, check_message=check_message)]


def test_meta_limits_come_from_the_message_builders_with_the_field_named():
    four = [{"id": str(i), "title": f"B{i}"} for i in range(4)]
    assert errors_of("send", {"type": "buttons", "body": "x", "buttons": four}) == [
        "config.buttons: 4 buttons; the limit is 3"
    ]
    long_title = [{"id": "a", "title": "x" * 21}]
    assert errors_of("send", {"type": "buttons", "body": "x", "buttons": long_title}) == [
        "config.buttons: button title is 21 characters; the limit is 20"
    ]
    rows = [{"id": str(i), "title": f"r{i}"} for i in range(11)]
    list_spec = {
        "type": "list",
        "body": "x",
        "button": "Open",
        "sections": [{"title": "s", "rows": rows}],
    }
    assert errors_of("send", list_spec) == ["config.sections: 11 rows in all; the limit is 10"]
    assert errors_of("send", {"type": "text", "body": "x" * 4097}) == [
        "config.body: text body is 4097 characters; the limit is 4096"
    ]
    assert errors_of(
        "question",
        {"prompt": {"type": "buttons", "body": "x", "buttons": four}, "expect": "choice"},
    ) == ["config.prompt.buttons: 4 buttons; the limit is 3"]


@pytest.mark.parametrize(
    ("step_type", "config", "expected"),
    [
        ("send", {"type": "video"}, "config.type: must be one of text, buttons, list, template"),
        ("send", {"type": "text"}, "config.body: is required"),
        (
            "send",
            {"type": "text", "body": "x", "colour": "red"},
            "config.colour: is not a known field",
        ),
        (
            "send",
            {"type": "text", "body": "Hi {{ contact.blocked }}"},
            "config.body: unknown placeholder",
        ),
        ("question", {"prompt": {"type": "text", "body": "?"}}, "config.expect: is required"),
        (
            "question",
            {"prompt": {"type": "text", "body": "?"}, "expect": "date"},
            "config.expect: must be one of",
        ),
        (
            "question",
            {"prompt": {"type": "text", "body": "?"}, "expect": "regex", "pattern": "("},
            "config.pattern: invalid regular expression",
        ),
        (
            "question",
            {"prompt": {"type": "text", "body": "?"}, "expect": "choice"},
            "config.choices: a choice question needs",
        ),
        (
            "question",
            {"prompt": {"type": "text", "body": "?"}, "expect": "text", "save_as": "a b"},
            "config.save_as: must be a variable name",
        ),
        (
            "question",
            {"prompt": {"type": "text", "body": "?"}, "expect": "text", "max_retries": 99},
            "config.max_retries: must be an integer 0-10",
        ),
        (
            "question",
            {"prompt": {"type": "template", "name": "t"}, "expect": "text"},
            "config.prompt.type: must be one of text, buttons, list",
        ),
        (
            "question",
            {
                "prompt": {"type": "text", "body": "?"},
                "expect": "text",
                "fallback": {"action": "explode"},
            },
            "config.fallback.action: must be end or handover",
        ),
        ("set_variable", {"set": {}}, "config.set: must be a non-empty object"),
        ("set_variable", {"set": {"1x": 1}}, "config.set.1x: must be a variable name"),
        ("action", {}, "config.action: is required"),
        ("start_flow", {"flow": ""}, "config.flow: must be a flow name"),
        ("end", {"message": 5}, "config.message: must be a string"),
        ("teleport", {}, "type: unknown step type"),
    ],
)
def test_step_config_errors_name_the_field(step_type, config, expected):
    errors = errors_of(step_type, config)
    assert any(e.startswith(expected) for e in errors), errors


def test_valid_configs_have_no_errors():
    assert errors_of("condition", {}) == []
    assert errors_of("handover", {"message": "A human will answer, {{ name }}."}) == []
    assert (
        errors_of("action", {"action": "football.fixtures", "params": {"limit": 5}, "save_as": "f"})
        == []
    )
    assert (
        errors_of(
            "question",
            {
                "prompt": {
                    "type": "list",
                    "body": "?",
                    "button": "Open",
                    "sections": [{"title": "s", "rows": [{"id": "a", "title": "A"}]}],
                },
                "expect": "choice",
                "save_as": "pick",
            },
        )
        == []
    )


def flow_with(steps):
    return {"name": "f", "trigger_keywords": [], "steps": steps}


def test_loop_of_automatic_steps_is_reported():
    steps = [
        {
            "name": "a",
            "type": "send",
            "entry": True,
            "config": {"type": "text", "body": "a"},
            "transitions": [{"to": "b"}],
        },
        {
            "name": "b",
            "type": "set_variable",
            "config": {"set": {"x": 1}},
            "transitions": [{"to": "c"}],
        },
        {
            "name": "c",
            "type": "condition",
            "config": {},
            "transitions": [{"to": "a", "condition": {}}],
        },
    ]
    errors = [str(e) for e in validate_flow(flow_with(steps), path="flows[0]")]
    assert errors == [
        "flows[0].steps: loop of automatic steps (nothing waits for the customer): a -> b -> c -> a"
    ]


def test_a_cycle_through_a_question_is_fine():
    steps = [
        {
            "name": "ask",
            "type": "question",
            "entry": True,
            "config": {"prompt": {"type": "text", "body": "?"}, "expect": "text"},
            "transitions": [{"to": "echo"}],
        },
        {
            "name": "echo",
            "type": "send",
            "config": {"type": "text", "body": "ok"},
            "transitions": [{"to": "ask"}],
        },
    ]
    assert validate_flow(flow_with(steps)) == []
    assert find_automatic_cycle({"a": "send"}, {"a": ["a"]}) == ["a", "a"]


def test_structure_errors():
    steps = [
        {
            "name": "a",
            "type": "condition",
            "config": {},
            "transitions": [{"to": "zz", "condition": {"op": "reply_id", "value": "x"}}],
        },
        {"name": "a", "type": "end", "config": {}, "transitions": [{"to": "a"}]},
    ]
    errors = [str(e) for e in validate_flow(flow_with(steps), path="flows[2]")]
    assert "flows[2].steps[1].name: step name 'a' is used twice" in errors
    assert "flows[2].steps: a flow needs exactly one entry step; found 0" in errors
    assert "flows[2].steps[0].transitions[0].to: no step named 'zz' in this flow" in errors
    assert any("needs a default transition" in e for e in errors)
    assert any("ends the run; it cannot have transitions" in e for e in errors)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"op": "nope"}, "condition.op: unknown operator"),
        ({"op": "equals", "var": "context.x"}, "condition.value: is required"),
        ({"op": "equals", "var": "contact.blocked", "value": 1}, "condition.var:"),
        (
            {"op": "regex", "var": "text", "pattern": "["},
            "condition.pattern: invalid regular expression",
        ),
        ({"op": "gt", "var": "text", "value": "ten"}, "condition.value: must be a number"),
        ({"all": []}, "condition.all: must be a non-empty list"),
        ({"any": [{"op": "bad"}]}, "condition.any[0].op: unknown operator"),
        ("always", "condition: must be an object"),
    ],
)
def test_condition_validation(condition, expected):
    steps = [
        {
            "name": "a",
            "type": "condition",
            "entry": True,
            "config": {},
            "transitions": [{"to": "b", "condition": condition}, {"to": "b"}],
        },
        {"name": "b", "type": "end", "config": {}},
    ]
    errors = [str(e) for e in validate_flow(flow_with(steps))]
    assert any(e.startswith(f"steps[0].transitions[0].{expected}") for e in errors), errors


def test_loop_across_flows_through_start_flow_is_reported():
    ping = {
        "name": "ping",
        "steps": [{"name": "go", "type": "start_flow", "entry": True, "config": {"flow": "pong"}}],
    }
    pong = {
        "name": "pong",
        "steps": [
            {
                "name": "hello",
                "type": "send",
                "entry": True,
                "config": {"type": "text", "body": "hi"},
                "transitions": [{"to": "back"}],
            },
            {"name": "back", "type": "start_flow", "config": {"flow": "ping"}},
        ],
    }
    assert find_cross_flow_cycle([ping, pong]) == ["ping:go", "pong:hello", "pong:back", "ping:go"]
    # A question anywhere in the chain breaks the loop.
    pong["steps"][0] = {
        **pong["steps"][0],
        "type": "question",
        "config": {"prompt": {"type": "text", "body": "?"}, "expect": "text"},
    }
    assert find_cross_flow_cycle([ping, pong]) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=8)
        | st.sampled_from(["text", "send", "question", "buttons", "entry", "to", "op", "steps"]),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "type",
                        "steps",
                        "config",
                        "transitions",
                        "to",
                        "condition",
                        "prompt",
                        "buttons",
                        "body",
                        "expect",
                        "op",
                        "var",
                        "value",
                        "entry",
                        "set",
                        "sections",
                        "rows",
                        "id",
                        "title",
                        "all",
                    ]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=30,
    )
)
def test_validation_never_raises_on_arbitrary_json(document):
    validate_flow(document, check_message=check_message)
    if isinstance(document, dict):
        validate_flow({"name": "f", **document}, check_message=check_message)
        for step_type in (
            "send",
            "question",
            "condition",
            "set_variable",
            "action",
            "start_flow",
            "end",
        ):
            validate_step_config(step_type, document, check_message=check_message)
        find_cross_flow_cycle([document])
