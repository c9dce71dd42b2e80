"""Reads of the flows app: definitions as plain data, sessions for the sweep and the admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef

from flows.models import ConversationSession, Flow, SessionStatus, Step, Transition
from meta_integration.models import InboundMessage

EXPORT_FORMAT = "whatsappcrm.flows"
EXPORT_VERSION = 1


def flow_data_list(*, include_ids: bool = False) -> list[dict[str, Any]]:
    """Every flow as plain data (the export shape), in three queries (flows, steps, transitions).

    With include_ids, flows and steps carry their primary keys as "id" (what the runtime cache
    needs to map session rows to step names); the export leaves them out.
    """
    flows = list(Flow.objects.order_by("-priority", "name"))
    steps_by_flow: dict[int, list[Step]] = {}
    for step in Step.objects.order_by("flow_id", "position", "id"):
        steps_by_flow.setdefault(step.flow_id, []).append(step)
    names = {step.pk: step.name for steps in steps_by_flow.values() for step in steps}
    transitions_by_step: dict[int, list[dict[str, Any]]] = {}
    for transition in Transition.objects.order_by("from_step_id", "order", "id").values(
        "from_step_id", "to_step_id", "condition"
    ):
        transitions_by_step.setdefault(transition["from_step_id"], []).append(
            {"to": names.get(transition["to_step_id"], ""), "condition": transition["condition"]}
        )
    data = []
    for flow in flows:
        flow_data: dict[str, Any] = {
            "name": flow.name,
            "description": flow.description,
            "active": flow.active,
            "is_default": flow.is_default,
            "priority": flow.priority,
            "trigger_keywords": flow.keywords,
            "idle_timeout_seconds": flow.idle_timeout_seconds,
            "timeout_message": flow.timeout_message,
            "steps": [],
        }
        if include_ids:
            flow_data["id"] = flow.pk
        for step in steps_by_flow.get(flow.pk, []):
            step_data: dict[str, Any] = {
                "name": step.name,
                "type": step.step_type,
                "entry": step.is_entry,
                "config": step.config,
                "transitions": transitions_by_step.get(step.pk, []),
            }
            if include_ids:
                step_data["id"] = step.pk
            flow_data["steps"].append(step_data)
        data.append(flow_data)
    return data


def flows_export() -> dict[str, Any]:
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "flows": flow_data_list()}


def open_sessions_for_contact(contact_id: int) -> list[ConversationSession]:
    """The contact's sessions not yet ended (at most one active, perhaps a handed-over one)."""
    return list(
        ConversationSession.objects.filter(contact_id=contact_id, ended_at__isnull=True).order_by(
            "id"
        )
    )


def expired_session_ids(*, now: datetime, limit: int) -> list[int]:
    """Active sessions past their expiry whose contact has no message waiting.

    A contact with an unprocessed message is left to the flow task: it expires the session
    itself if the message arrived after expiry (and answers it), or continues the session if
    the message arrived in time but waited in the queue.
    """
    pending = InboundMessage.objects.filter(
        contact_id=OuterRef("contact_id"), processed_at__isnull=True, parked_at__isnull=True
    )
    return list(
        ConversationSession.objects.filter(status=SessionStatus.ACTIVE, expires_at__lte=now)
        .exclude(Exists(pending))
        # A human has the conversation: it never expires (session_expire would also refuse).
        .exclude(contact__needs_human=True)
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )
