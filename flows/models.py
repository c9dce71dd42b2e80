"""Flow definitions (Flow, Step, Transition) and conversation sessions.

Definitions are read at run time from a cache keyed by `FlowCacheVersion` (see flows/cache.py);
any save or delete of a Flow, Step or Transition bumps that version (flows/signals.py).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from flows.engine.types import SessionStatus as EngineSessionStatus
from flows.engine.types import StepType as EngineStepType
from meta_integration.models import Contact, InboundMessage


class Flow(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    trigger_keywords = models.CharField(
        max_length=500,
        blank=True,
        help_text="Comma-separated words or phrases. They match whole words, ignoring case and "
        'accents ("hi" matches "Hi there" but never "this").',
    )
    priority = models.IntegerField(
        default=0, help_text="When several flows' keywords match, the highest priority wins."
    )
    is_default = models.BooleanField(
        "default flow",
        default=False,
        help_text="Started for a message that matches no keyword, and by the 'menu' command.",
    )
    idle_timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: settings.SESSION_IDLE_TIMEOUT."
    )
    timeout_message = models.TextField(
        blank=True, help_text="Sent when a session of this flow expires. Empty: a default text."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="flows_at_most_one_default_flow",
                violation_error_message="Another flow is already the default flow.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def keywords(self) -> list[str]:
        return [k.strip() for k in self.trigger_keywords.split(",") if k.strip()]

    def clean(self) -> None:
        if self.is_default and not self.active:
            raise ValidationError({"is_default": "The default flow must be active."})


class StepType(models.TextChoices):
    SEND = EngineStepType.SEND, "send a message"
    QUESTION = EngineStepType.QUESTION, "ask a question"
    CONDITION = EngineStepType.CONDITION, "branch on a condition"
    SET_VARIABLE = EngineStepType.SET_VARIABLE, "set variables"
    ACTION = EngineStepType.ACTION, "run a registered action"
    START_FLOW = EngineStepType.START_FLOW, "start another flow"
    HANDOVER = EngineStepType.HANDOVER, "hand over to a human"
    END = EngineStepType.END, "end the flow"


class Step(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=100)
    step_type = models.CharField("type", max_length=20, choices=StepType.choices)
    # "Exactly one entry step per flow" is a rule over the whole set of steps, checked by the
    # admin formset and by import; a partial unique index would refuse moving the entry from one
    # step to another in a single save (rows are saved one by one).
    is_entry = models.BooleanField("entry step", default=False)
    config = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0, help_text="Display order only.")

    class Meta:
        ordering = ["flow", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "name"], name="flows_step_name_unique_in_flow")
        ]

    def __str__(self) -> str:
        return f"{self.flow.name}: {self.name}" if self.flow_id else self.name


class Transition(models.Model):
    # `flow` is redundant with the steps' flow; it lets the admin edit transitions inline on
    # the flow page and keeps the definition load to one query per table.
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="transitions")
    from_step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="transitions")
    to_step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="incoming")
    order = models.PositiveIntegerField(default=0, help_text="Evaluated in ascending order.")
    condition = models.JSONField(
        default=dict, blank=True, help_text="Empty: always (the default transition)."
    )

    class Meta:
        ordering = ["from_step", "order", "id"]

    def __str__(self) -> str:
        return f"{self.from_step.name} -> {self.to_step.name}"

    def clean(self) -> None:
        if not (self.from_step_id and self.to_step_id):
            return
        flow_ids = {self.from_step.flow_id, self.to_step.flow_id}
        if self.flow_id:
            flow_ids.add(self.flow_id)
        if len(flow_ids) != 1:
            raise ValidationError("A transition links two steps of the same flow.")


class FlowCacheVersion(models.Model):
    """One row: the global version of all flow definitions (the cache key's source of truth)."""

    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"flow definitions version {self.version}"


class SessionStatus(models.TextChoices):
    ACTIVE = EngineSessionStatus.ACTIVE, "active"
    COMPLETED = EngineSessionStatus.COMPLETED, "completed"
    EXPIRED = EngineSessionStatus.EXPIRED, "expired"
    HANDED_OVER = EngineSessionStatus.HANDED_OVER, "handed over"
    CANCELLED = EngineSessionStatus.CANCELLED, "cancelled"


class ConversationSession(models.Model):
    """A contact's walk through a flow. Ended sessions stay as history until pruned."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="flow_sessions")
    # SET_NULL: deleting a flow keeps its history; an active session left without a flow or
    # step is closed at the contact's next message.
    flow = models.ForeignKey(
        Flow, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    current_step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    context = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Invalid answers to the current question."
    )
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.ACTIVE
    )
    started_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Null while the session is open: active, or handed over and not yet resolved.
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["contact"],
                condition=Q(status="active"),
                name="flows_one_active_session_per_contact",
            )
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="flows_session_expiry"),
            models.Index(fields=["contact", "ended_at"], name="flows_session_open"),
            models.Index(fields=["ended_at"], name="flows_session_ended"),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} of contact {self.contact_id} [{self.status}]"


class ContactState(models.Model):
    """The flows app's own row per contact: the lock the flow task holds, and the hand-over.

    The flow task locks this row, never the Contact row: every webhook upserts the contact, so a
    lock on it made webhook requests wait for flow transactions (and their actions). Whoever
    changes a contact's conversation (flow task, idle sweeper, operator) locks this row first.

    `Contact.needs_human` stays the one switch that silences the bot (the contact admin may flip
    it); this row holds the hand-over's details and is reconciled with it at the next message.
    """

    contact = models.OneToOneField(
        Contact, primary_key=True, on_delete=models.CASCADE, related_name="flow_state"
    )
    handed_over_at = models.DateTimeField(null=True, blank=True)
    handover_reason = models.CharField(max_length=200, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
    # The first operator reply since the hand-over: an answered hand-over is never flagged.
    agent_replied_at = models.DateTimeField(null=True, blank=True)
    # Nobody answered within FLOWS_HANDOVER_ALERT_SECONDS (flag_unanswered_handovers_task).
    flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "conversation state"
        indexes = [models.Index(fields=["handed_over_at"], name="flows_state_handed_over")]

    def __str__(self) -> str:
        return f"state of contact {self.contact_id}"


class Conversation(Contact):
    """A contact seen as a conversation: the agent's view in the admin (flows/agent/)."""

    class Meta:
        proxy = True
        verbose_name = "conversation"


class ParkedInboundMessage(InboundMessage):
    """Inbound messages that failed FLOWS_MAX_PROCESSING_ATTEMPTS times, with a replay action."""

    class Meta:
        proxy = True
        verbose_name = "parked inbound message"
