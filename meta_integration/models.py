"""The WhatsApp channel's rows: numbers, contacts, inbound/outbound messages, raw events.

Rows are written before anything is enqueued, and unique keys (wamid, idempotency_key) make a
redelivery or a retried task a no-op instead of a duplicate.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WhatsAppNumber(models.Model):
    """A business phone number on the Cloud API. Inbound events route by phone_number_id."""

    phone_number_id = models.CharField(max_length=64, unique=True)
    waba_id = models.CharField("WABA id", max_length=64, blank=True)
    display_phone_number = models.CharField(max_length=32, blank=True)
    api_version = models.CharField(max_length=16, default="v23.0")
    active = models.BooleanField(default=True)
    # Optional per-number token; empty means META_ACCESS_TOKEN. Never shown back in the admin.
    access_token_override = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "WhatsApp number"

    def __str__(self) -> str:
        return self.display_phone_number or self.phone_number_id


class Contact(models.Model):
    wa_id = models.CharField("WhatsApp id", max_length=32, unique=True)
    user_id = models.CharField("business-scoped user id", max_length=128, blank=True)
    profile_name = models.CharField(max_length=256, blank=True)
    number = models.ForeignKey(
        WhatsAppNumber,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contacts",
        help_text="The business number this contact last wrote to; replies go out from it.",
    )
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # The customer-service window: free-form messages only within 24 h of this.
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    opted_in = models.BooleanField(default=False)
    blocked = models.BooleanField(default=False)
    needs_human = models.BooleanField(default=False, help_text="Handed over: the bot is silent.")

    def __str__(self) -> str:
        return f"{self.profile_name} ({self.wa_id})" if self.profile_name else self.wa_id


class InboundMessage(models.Model):
    wamid = models.CharField(max_length=255, unique=True)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="inbound_messages")
    number = models.ForeignKey(WhatsAppNumber, null=True, blank=True, on_delete=models.SET_NULL)
    message_type = models.CharField(max_length=32)
    text = models.TextField(blank=True, help_text="Text body, caption or reply title.")
    reply_id = models.CharField(max_length=256, blank=True, help_text="Button/list reply id.")
    context_wamid = models.CharField(max_length=255, blank=True)
    payload = models.JSONField(default=dict)
    sent_at = models.DateTimeField(help_text="Meta's timestamp for the message.")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    read_receipt_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When Meta accepted our mark-as-read (blue ticks)."
    )
    # Set when the receipt was given up (refused by Meta, retries spent, no number): the
    # sweeper re-sends only receipts that are neither sent nor given up.
    read_receipt_error = models.CharField(max_length=200, blank=True)
    # Poison messages: every failed processing attempt is counted; after the limit the message
    # is parked (kept, shown in the admin with its error, replayable) and the contact's later
    # messages go through.
    processing_attempts = models.PositiveSmallIntegerField(default=0)
    processing_error = models.TextField(blank=True)
    parked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["contact", "processed_at", "id"], name="inbound_contact_pending"),
            models.Index(fields=["processed_at", "received_at"], name="inbound_pending"),
            models.Index(
                fields=["read_receipt_sent_at", "received_at"], name="inbound_receipt_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_type} from {self.contact_id}: {self.text[:40]}"


class ConversationWindow(models.Model):
    """Meta's customer-service window is per (business number, customer) pair: a free-form
    reply must leave from the number the customer wrote to, within 24 h of their message."""

    number = models.ForeignKey(WhatsAppNumber, on_delete=models.CASCADE, related_name="windows")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="windows")
    last_inbound_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["number", "contact"], name="meta_window_pair")
        ]

    def __str__(self) -> str:
        return f"window {self.number_id}/{self.contact_id} since {self.last_inbound_at}"


class TemplateStatus(models.TextChoices):
    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    IN_APPEAL = "IN_APPEAL"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"


class MessageTemplate(models.Model):
    """The template catalogue of one WhatsApp Business Account, synced from the Graph API
    (`GET /{waba-id}/message_templates`) and kept current by the template webhooks."""

    waba_id = models.CharField("WABA id", max_length=64)
    template_id = models.CharField(max_length=64, blank=True, help_text="Meta's id.")
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=16)
    category = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=24, choices=TemplateStatus.choices)
    # Number of {{n}} placeholders in the body (what a send must supply).
    body_parameter_count = models.PositiveSmallIntegerField(default=0)
    components = models.JSONField(default=list, blank=True)
    rejected_reason = models.CharField(max_length=200, blank=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["waba_id", "name", "language"], name="meta_template_unique"
            )
        ]
        ordering = ["name", "language"]

    def __str__(self) -> str:
        return f"{self.name} ({self.language}) [{self.status}]"


class OutboundStatus(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class OutboundMessage(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="outbound_messages")
    number = models.ForeignKey(WhatsAppNumber, null=True, blank=True, on_delete=models.SET_NULL)
    in_reply_to = models.ForeignKey(
        InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    # Set by whoever creates the row (e.g. "<inbound wamid>:<action index>"); sent to Meta as
    # biz_opaque_callback_data so a status webhook can complete a send we did not record.
    idempotency_key = models.CharField(max_length=255, unique=True)
    message_type = models.CharField(max_length=32)
    payload = models.JSONField(help_text="Graph message object without messaging_product/to.")
    text = models.TextField(blank=True, help_text="Readable preview for the admin.")
    priority = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=OutboundStatus.choices, default=OutboundStatus.QUEUED
    )
    wamid = models.CharField(max_length=255, unique=True, null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    possible_duplicate = models.BooleanField(
        default=False, help_text="Resent from 'sending' by the sweeper: Meta may have it twice."
    )
    error_code = models.IntegerField(null=True, blank=True)
    error_details = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    # When the row is next due to be sent: now when queued, later while a retry waits out its
    # backoff. The sweeper re-enqueues a queued row only once this is older than its grace, so
    # it never hurries a retry that is merely waiting.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sending_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "queued_at"], name="outbound_status_age"),
            models.Index(fields=["contact", "queued_at"], name="outbound_contact"),
            models.Index(fields=["status", "next_attempt_at"], name="outbound_status_due"),
            models.Index(fields=["status", "sending_at"], name="outbound_status_sending"),
        ]

    def __str__(self) -> str:
        return f"{self.message_type} to {self.contact_id} [{self.status}]"


class FailedOutboundMessage(OutboundMessage):
    """The failed sends, as their own admin page with a replay action."""

    class Meta:
        proxy = True
        verbose_name = "failed send"


class WebhookEvent(models.Model):
    """The raw body of every well-signed webhook POST, kept for a retention period.

    The webhook stores it and answers; the ingest task parses and applies it and sets
    `processed_at`. An event left unprocessed (its task lost, Redis down) is re-enqueued by
    the sweeper.
    """

    body = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    messages_count = models.PositiveIntegerField(default=0)
    statuses_count = models.PositiveIntegerField(default=0)
    # False for a status or template callback: a customer's message ingest, which first
    # applies the earlier pending events of its customers, leaves these to the status drain.
    carries_messages = models.BooleanField(default=True)

    class Meta:
        indexes = [
            models.Index(fields=["processed_at", "received_at"], name="webhook_event_pending"),
        ]

    def __str__(self) -> str:
        return f"webhook event {self.pk} at {self.received_at:%Y-%m-%d %H:%M:%S}"
