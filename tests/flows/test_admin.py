"""The admin: step config validated per type (a form error naming the field, never a 500),
flow-level checks, cache version bumps, and the session actions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from flows.demo import DEMO_FLOWS
from flows.models import ConversationSession, Flow, FlowCacheVersion, SessionStatus, Step
from flows.services import flows_import
from meta_integration.models import OutboundMessage
from tests.factories import make_contact

pytestmark = pytest.mark.django_db

TEXT = {"type": "text", "body": "Hello"}


def flow_post(
    name="new", steps=(), transitions=(), initial_steps=0, initial_transitions=0, **fields
):
    data = {
        "name": name,
        "description": "",
        "active": "on",
        "priority": "0",
        "trigger_keywords": fields.pop("trigger_keywords", ""),
        "idle_timeout_seconds": "",
        "timeout_message": "",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": str(initial_steps),
        "transitions-TOTAL_FORMS": str(len(transitions)),
        "transitions-INITIAL_FORMS": str(initial_transitions),
        **fields,
    }
    for index, step in enumerate(steps):
        for key, value in step.items():
            if key == "config":
                value = json.dumps(value)
            if key == "is_entry":
                if not value:
                    continue
                value = "on"
            data[f"steps-{index}-{key}"] = value
        data.setdefault(f"steps-{index}-position", str(index))
    for index, transition in enumerate(transitions):
        for key, value in transition.items():
            data[f"transitions-{index}-{key}"] = json.dumps(value) if key == "condition" else value
    return data


def errors_in(response) -> str:
    return response.content.decode()


def test_add_flow_with_a_bad_step_config_is_a_form_error(admin_client):
    buttons = [{"id": str(i), "title": f"Option {i}"} for i in range(4)]
    response = admin_client.post(
        reverse("admin:flows_flow_add"),
        flow_post(
            steps=[
                {
                    "name": "menu",
                    "step_type": "send",
                    "is_entry": True,
                    "config": {"type": "buttons", "body": "Pick", "buttons": buttons},
                }
            ]
        ),
    )
    assert response.status_code == 200
    assert "config.buttons: 4 buttons; the limit is 3" in errors_in(response)
    assert not Flow.objects.exists()


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"step_type": "question", "config": {"prompt": TEXT}}, "config.expect: is required"),
        (
            {"step_type": "send", "config": {"type": "text", "body": "Hi {{ contact.blocked }}"}},
            "unknown placeholder",
        ),
        ({"step_type": "start_flow", "config": {"flow": "nowhere"}}, "config.flow: no flow named"),
        ({"step_type": "send", "config": "not json"}, "Enter a valid JSON"),
    ],
)
def test_other_config_errors(admin_client, step, expected):
    post = flow_post(steps=[{"name": "s", "is_entry": True, **step}])
    if step["config"] == "not json":
        post["steps-0-config"] = "{not json"
    response = admin_client.post(reverse("admin:flows_flow_add"), post)
    assert response.status_code == 200
    assert expected in errors_in(response)
    assert not Flow.objects.exists()


def test_exactly_one_entry_step(admin_client):
    response = admin_client.post(
        reverse("admin:flows_flow_add"),
        flow_post(
            steps=[
                {"name": "a", "step_type": "send", "config": TEXT},
                {"name": "b", "step_type": "end", "config": {}},
            ]
        ),
    )
    assert "A flow needs exactly one entry step; 0 are marked as entry." in errors_in(response)


def test_second_default_flow_is_refused(admin_client):
    flows_import(data=DEMO_FLOWS)
    response = admin_client.post(
        reverse("admin:flows_flow_add"),
        flow_post(
            is_default="on",
            steps=[{"name": "a", "step_type": "send", "is_entry": True, "config": TEXT}],
        ),
    )
    assert "Another flow is already the default flow." in errors_in(response)


def test_add_then_link_steps_and_a_loop_is_refused(admin_client):
    steps = [
        {"name": "a", "step_type": "send", "is_entry": True, "config": TEXT},
        {"name": "b", "step_type": "send", "config": TEXT},
    ]
    version = FlowCacheVersion.objects.get().version
    response = admin_client.post(reverse("admin:flows_flow_add"), flow_post(steps=steps))
    assert response.status_code == 302, errors_in(response)
    flow = Flow.objects.get(name="new")
    assert FlowCacheVersion.objects.get().version > version  # saving bumps the cache version
    a, b = Step.objects.get(name="a"), Step.objects.get(name="b")
    existing = [
        {**s, "id": str(step.pk), "flow": str(flow.pk)}
        for s, step in zip(steps, (a, b), strict=True)
    ]
    change_url = reverse("admin:flows_flow_change", args=[flow.pk])

    loop = [
        {"from_step": str(a.pk), "to_step": str(b.pk), "order": "0", "condition": {}},
        {"from_step": str(b.pk), "to_step": str(a.pk), "order": "0", "condition": {}},
    ]
    response = admin_client.post(
        change_url, flow_post(steps=existing, initial_steps=2, transitions=loop)
    )
    assert response.status_code == 200
    assert (
        "loop of automatic steps (nothing waits for the customer): a -&gt; b -&gt; a"
        in errors_in(response)
    )
    assert not flow.transitions.exists()

    # Turning b into a question breaks the loop: the same transitions now save.
    existing[1]["step_type"] = "question"
    existing[1]["config"] = {"prompt": TEXT, "expect": "text"}
    response = admin_client.post(
        change_url, flow_post(steps=existing, initial_steps=2, transitions=loop)
    )
    assert response.status_code == 302, errors_in(response)
    assert flow.transitions.count() == 2


def test_bad_condition_is_a_form_error(admin_client):
    flows_import(data=DEMO_FLOWS)
    flow = Flow.objects.get(name="support")
    describe, handover = flow.steps.order_by("position")
    transition = flow.transitions.get()
    steps = [
        {
            "id": str(describe.pk),
            "flow": str(flow.pk),
            "name": "describe",
            "step_type": "question",
            "is_entry": True,
            "config": describe.config,
        },
        {
            "id": str(handover.pk),
            "flow": str(flow.pk),
            "name": "handover",
            "step_type": "handover",
            "config": handover.config,
        },
    ]
    transitions = [
        {
            "id": str(transition.pk),
            "flow": str(flow.pk),
            "from_step": str(describe.pk),
            "to_step": str(handover.pk),
            "order": "0",
            "condition": {"op": "regex", "var": "text", "pattern": "("},
        }
    ]
    response = admin_client.post(
        reverse("admin:flows_flow_change", args=[flow.pk]),
        flow_post(
            name="support",
            steps=steps,
            initial_steps=2,
            transitions=transitions,
            initial_transitions=1,
        ),
    )
    assert response.status_code == 200
    assert "condition.pattern: invalid regular expression" in errors_in(response)


def test_flow_pages_render(admin_client):
    flows_import(data=DEMO_FLOWS)
    flow = Flow.objects.get(name="main_menu")
    assert admin_client.get(reverse("admin:flows_flow_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:flows_flow_change", args=[flow.pk])).status_code == 200
    assert admin_client.get(reverse("admin:flows_flow_add")).status_code == 200


def test_session_admin_time_left_and_expire_now(admin_client):
    flows_import(data=DEMO_FLOWS)
    contact = make_contact()
    flow = Flow.objects.get(name="main_menu")
    now = timezone.now()
    session = ConversationSession.objects.create(
        contact=contact,
        flow=flow,
        current_step=flow.steps.get(name="menu"),
        last_activity_at=now,
        expires_at=now + timedelta(seconds=250),
    )
    page = admin_client.get(reverse("admin:flows_conversationsession_changelist"))
    assert page.status_code == 200
    assert "4m 0" in page.content.decode() or "4m 1" in page.content.decode()
    assert (
        admin_client.get(
            reverse("admin:flows_conversationsession_change", args=[session.pk])
        ).status_code
        == 200
    )
    response = admin_client.post(
        reverse("admin:flows_conversationsession_changelist"),
        {"action": "expire_now", "_selected_action": [str(session.pk)]},
    )
    assert response.status_code == 302
    session.refresh_from_db()
    assert (session.status, session.ended_reason) == (SessionStatus.EXPIRED, "expired by operator")
    assert OutboundMessage.objects.filter(idempotency_key=f"session-timeout:{session.pk}").exists()
