"""Look up a message by wamid (inbound or outbound), or a customer by WhatsApp number, with
each message's status history and a plain-language answer to "why was the reply slow or
missing?". The diagnosis is a plain function of the rows' fields."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from flows.models import ConversationSession, SessionStatus
from meta_integration.models import (
    Contact,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    WebhookEvent,
)
from whatsappcrm_backend.console.selectors_latency import timeline

SLOW_MS = 5_000
NO_DELIVERY_AFTER = timedelta(minutes=2)
CONTACT_MESSAGES = 20
EVENT_SEARCH_SPAN = timedelta(hours=24)
EVENT_LIMIT = 20


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.1f} s"


def diagnose(
    *,
    inbound: InboundMessage,
    replies: list[OutboundMessage],
    contact: Contact,
    now: datetime,
    sending_grace_s: int = 120,
) -> list[str]:
    """Why this customer's reply was slow or missing, one finding per line, worst first."""
    findings: list[str] = []
    if inbound.parked_at:
        findings.append(
            f"The flow failed on this message {inbound.processing_attempts} time(s) and parked "
            f"it: {inbound.processing_error.splitlines()[0] if inbound.processing_error else ''}"
            " — replay it from Failed work."
        )
    elif inbound.processed_at is None:
        findings.append(
            f"Not processed yet: waiting {_seconds(now - inbound.received_at)} for the flow task "
            f"(attempts so far: {inbound.processing_attempts}). Check the celery queue's depth "
            "and workers on the Queues page."
        )
    else:
        lag = inbound.processed_at - inbound.received_at
        if lag.total_seconds() * 1000 > SLOW_MS:
            findings.append(
                f"The flow processed it {_seconds(lag)} after the webhook: the wait was on the "
                "flow task (queue backlog or busy workers)."
            )
        if not replies:
            if contact.needs_human:
                findings.append("No reply by design: the contact is handed over to a human.")
            elif contact.blocked:
                findings.append("No reply: the contact is blocked.")
            else:
                findings.append("Processed, but the flow produced no reply for this message.")
    for reply in replies:
        label = f"Reply {reply.pk}"
        if reply.status == OutboundStatus.FAILED:
            findings.append(
                f"{label} failed (code {reply.error_code}): {reply.error_details[:200]} — "
                "replay it from Failed work."
            )
        elif reply.status == OutboundStatus.QUEUED:
            extra = f"; last error {reply.error_code}" if reply.error_code else ""
            due = reply.next_attempt_at
            when = "now" if due <= now else "in " + _seconds(due - now)
            findings.append(
                f"{label} is queued since {_seconds(now - reply.queued_at)}, after "
                f"{reply.attempts} attempt(s){extra}; next attempt due {when}."
            )
        elif reply.status == OutboundStatus.SENDING:
            since = now - (reply.sending_at or reply.queued_at)
            findings.append(
                f"{label} is being sent for {_seconds(since)}"
                + (
                    f"; past the {sending_grace_s} s grace the sweeper resends it (flagged as a "
                    "possible duplicate)."
                    if since.total_seconds() > sending_grace_s
                    else "."
                )
            )
        else:
            if reply.sent_at and reply.queued_at:
                send_wait = reply.sent_at - reply.queued_at
                if send_wait.total_seconds() * 1000 > SLOW_MS:
                    last = f", last error {reply.error_code}" if reply.error_code else ""
                    findings.append(
                        f"{label} waited {_seconds(send_wait)} between queued and sent "
                        f"({reply.attempts} attempt(s){last}): "
                        "send queue backlog, rate limit or retries."
                    )
            if (
                reply.status == OutboundStatus.SENT
                and reply.sent_at
                and now - reply.sent_at > NO_DELIVERY_AFTER
            ):
                findings.append(
                    f"{label} was accepted by Meta {_seconds(now - reply.sent_at)} ago but no "
                    "delivery status came back: the phone may be offline, or status webhooks "
                    "are not arriving."
                )
        if reply.possible_duplicate:
            findings.append(f"{label} was resent by the sweeper: the customer may have it twice.")
    if not findings:
        findings.append("Nothing wrong found: every step completed in time.")
    return findings


def _events_mentioning(wamid: str, start: datetime) -> list[WebhookEvent]:
    """Raw webhook bodies that mention the wamid (bounded to a day after the message)."""
    return list(
        WebhookEvent.objects.filter(
            received_at__gte=start - timedelta(minutes=5),
            received_at__lte=start + EVENT_SEARCH_SPAN,
            body__contains=wamid,
        ).order_by("received_at")[:EVENT_LIMIT]
    )


def _inbound_view(inbound: InboundMessage, now: datetime) -> dict[str, Any]:
    replies = list(inbound.replies.defer("payload").order_by("id"))
    return {
        "inbound": inbound,
        "replies": [{"row": reply, "timeline": timeline(inbound, reply)} for reply in replies],
        "timeline": timeline(inbound, None),
        "diagnosis": diagnose(
            inbound=inbound,
            replies=replies,
            contact=inbound.contact,
            now=now,
            sending_grace_s=int(getattr(settings, "META_SENDING_GRACE_SECONDS", 120)),
        ),
    }


def lookup(query: str, *, now: datetime | None = None) -> dict[str, Any]:
    """`query`: an inbound or outbound wamid, an outbound idempotency key, or a WhatsApp number."""
    now = now or timezone.now()
    query = query.strip()
    result: dict[str, Any] = {"query": query, "kind": None}
    if not query:
        return result
    inbound = InboundMessage.objects.select_related("contact").filter(wamid=query).first()
    if inbound is not None:
        result.update(kind="inbound", **_inbound_view(inbound, now))
        result["events"] = _events_mentioning(query, inbound.received_at)
        return result
    outbound = (
        OutboundMessage.objects.select_related("contact", "in_reply_to").filter(wamid=query).first()
        or OutboundMessage.objects.select_related("contact", "in_reply_to")
        .filter(idempotency_key=query)
        .first()
    )
    if outbound is not None:
        result.update(
            kind="outbound",
            outbound=outbound,
            timeline=timeline(outbound.in_reply_to, outbound),
            events=_events_mentioning(outbound.wamid, outbound.queued_at) if outbound.wamid else [],
        )
        return result
    digits = query.lstrip("+").replace(" ", "")
    contact = Contact.objects.filter(wa_id=digits).first()
    if contact is not None:
        messages = list(
            InboundMessage.objects.filter(contact=contact)
            .select_related("contact")
            .defer("payload")
            .order_by("-id")[:CONTACT_MESSAGES]
        )
        session = (
            ConversationSession.objects.filter(
                contact=contact,
                status__in=(SessionStatus.ACTIVE, SessionStatus.HANDED_OVER),
                ended_at__isnull=True,
            )
            .select_related("flow", "current_step")
            .first()
        )
        result.update(
            kind="contact",
            contact=contact,
            session=session,
            messages=[_inbound_view(message, now) for message in messages],
            other_sends=list(
                OutboundMessage.objects.filter(contact=contact, in_reply_to__isnull=True)
                .defer("payload")
                .order_by("-id")[:10]
            ),
        )
        return result
    result["kind"] = "none"
    return result
