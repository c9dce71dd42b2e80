"""The hot path: run every unprocessed inbound message of one contact through the engine.

One transaction per run: the contact's flows lock (its ContactState row, never the Contact row
the webhook upserts), the engine's verdict per message, the session rows, the outbound rows
(sends are published after commit by outbound_message_create) and the processed markers commit
together or not at all. A redelivered or duplicate task finds nothing unprocessed and does
nothing.

A message whose processing raises rolls the run back; the attempt is then counted on that
message in a transaction of its own (flows/services/poison.py), and at the limit the message is
parked and the run starts again without it. Chosen over a savepoint per message: the hot path
keeps its query count (no SAVEPOINT/RELEASE per message), and re-running the earlier messages
of the batch is safe because every write is idempotent (reply keys, conditional updates).

Queries for one message with a warm definitions cache (pinned in tests/flows):
  1 SELECT contact state JOIN contact ... FOR UPDATE OF state  (the lock; SQLite serialises
    at BEGIN IMMEDIATE instead; a contact's first run also creates the row: +3)
  2 SELECT unprocessed, unparked inbound messages of the contact
  3 SELECT the contact's open sessions
  4-6 per reply, outbound_message_create: SAVEPOINT, INSERT, RELEASE
  7 INSERT or UPDATE of the session
  8 UPDATE processed_at of the messages
(plus one GET in Redis for the definitions version.)
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from flows.actions import registered_actions
from flows.cache import get_definitions
from flows.engine import (
    ActionCall,
    ActionFunc,
    Message,
    Outcome,
    SessionState,
    SessionStatus,
    handle_message,
)
from flows.messages import build_message
from flows.models import ContactState, ConversationSession
from flows.selectors import open_sessions_for_contact
from flows.services.config import engine_options
from flows.services.handover import state_mark_handed_over
from flows.services.poison import inbound_attempt_fail
from flows.services.sessions import contact_fields, idle_timeout_seconds, timeout_message_send
from flows.services.state import contact_state_lock, reply_key
from meta_integration.messages import MessageValidationError, text_message
from meta_integration.models import Contact, InboundMessage
from meta_integration.services import outbound_message_create
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.instrumentation import instrumented

logger = logging.getLogger(__name__)


class SessionConflict(Exception):
    """A session row changed under us (the task retries the whole transaction)."""


def inbound_to_message(inbound: InboundMessage) -> Message:
    payload = inbound.payload if isinstance(inbound.payload, dict) else {}
    location = payload.get("location") if isinstance(payload.get("location"), dict) else None
    return Message(
        type=inbound.message_type,
        text=inbound.text or "",
        reply_id=inbound.reply_id or "",
        location=location,
    )


def _in_savepoint(func: ActionFunc) -> ActionFunc:
    # An action that hits a database error must not poison the flow transaction (PostgreSQL
    # refuses every later statement in an aborted transaction): give it its own savepoint.
    def call(action_call: ActionCall) -> Any:
        with transaction.atomic():
            return func(action_call)

    return call


def _state_of(row: ConversationSession, definitions: Mapping[str, Any]) -> SessionState:
    flow_name = definitions["flow_ids"].get(row.flow_id, "")
    step = definitions["step_ids"].get(row.current_step_id)
    return SessionState(
        id=row.pk,
        flow=flow_name,
        step=step[1] if step and step[0] == flow_name else None,
        context=row.context if isinstance(row.context, dict) else {},
        attempts=row.attempts,
        status=row.status,
    )


def _error_outcome(state: SessionState | None) -> Outcome:
    outcome = Outcome()
    if state is not None:
        ended = copy.copy(state)
        ended.status, ended.ended_reason = SessionStatus.CANCELLED, "error"
        outcome.sessions.append(ended)
    outcome.actions.append(
        {"type": "send", "message": {"type": "text", "body": engine_options().text("error")}}
    )
    return outcome


def _persist(
    *,
    contact: Contact,
    outcome: Outcome,
    definitions: Mapping[str, Any],
    activity_at: datetime,
    now: datetime,
) -> ConversationSession | None:
    """Write every session the outcome touched; return the one left active (in memory)."""
    active: ConversationSession | None = None
    for state in outcome.sessions:
        flow = definitions["flows"].get(state.flow)
        step = flow["steps"].get(state.step) if flow and state.step else None
        values: dict[str, Any] = {
            "flow_id": flow["id"] if flow else None,
            "current_step_id": step["id"] if step else None,
            "context": state.context,
            "attempts": state.attempts,
            "status": state.status,
            "ended_reason": state.ended_reason,
            "last_activity_at": activity_at,
        }
        if state.status == SessionStatus.ACTIVE:
            values["expires_at"] = activity_at + timedelta(seconds=idle_timeout_seconds(flow))
        elif state.status != SessionStatus.HANDED_OVER:
            values["ended_at"] = now  # handed-over sessions stay open until resolved
        if state.id is None:
            row = ConversationSession.objects.create(contact=contact, started_at=now, **values)
            state.id = row.pk
        else:
            # Conditional: only a session still active is ours to move on. Anything else
            # means another writer got there first; retry with a fresh read.
            if not ConversationSession.objects.filter(
                pk=state.id, status=SessionStatus.ACTIVE
            ).update(**values):
                raise SessionConflict(f"session {state.id} is no longer active")
            row = ConversationSession(pk=state.id, contact=contact, **values)
        if state.status == SessionStatus.ACTIVE:
            active = row
    return active


def _build(spec: Mapping[str, Any], inbound: InboundMessage) -> dict[str, Any] | None:
    try:
        return build_message(spec)
    except (MessageValidationError, KeyError, TypeError) as exc:
        # Validation keeps bad config out, but placeholders can still push a body past
        # Meta's limit at run time: degrade to plain text rather than fail the reply.
        logger.warning("message for inbound %s does not build (%s); sent as text", inbound.pk, exc)
    body = str(spec.get("body") or "").strip()
    return text_message(body[:4096]) if body else None


def _queue_replies(*, contact: Contact, inbound: InboundMessage, outcome: Outcome) -> int:
    index = 0
    for spec in outcome.sends:
        message = _build(spec, inbound)
        if message is None:
            continue
        # Index 0 is the first send for this inbound message: a redelivery recreates the same
        # keys, so it can never send twice, and load tools correlate replies by "<wamid>:0".
        # It leaves from the number the customer wrote to (in_reply_to decides).
        outbound_message_create(
            contact=contact,
            idempotency_key=reply_key(inbound.wamid, index),
            message=message,
            in_reply_to=inbound,
            priority=Priority.REPLY,
        )
        index += 1
    return index


def _log_outcome(outcome: Outcome, inbound: InboundMessage) -> None:
    for level, text in outcome.logs:
        logger.log(
            {"error": logging.ERROR, "warning": logging.WARNING}.get(level, logging.INFO),
            "inbound %s of contact %s: %s",
            inbound.pk,
            inbound.contact_id,
            text,
        )


@instrumented("flow.process_contact", warn_ms=250, error_ms=1000)
def contact_messages_process(*, contact_id: int, now: datetime | None = None) -> dict[str, int]:
    """Process every unprocessed inbound message of the contact, in arrival (id) order.

    Returns processed/replies, and `failed` (1) when a message failed without being parked yet:
    the task then runs again soon. Lock waits, deadlocks and session conflicts propagate (the
    task retries the whole run; they say nothing about the message).
    """
    now = now or timezone.now()
    parked = 0
    # Each pass parks at most one message; a batch of n messages needs at most n + 1 passes.
    while True:
        current: list[InboundMessage] = []
        try:
            result = _process_batch(contact_id=contact_id, now=now, current=current)
        except (OperationalError, InterfaceError, SessionConflict):
            raise  # the database or a concurrent writer, not this message: retry the run
        except Exception as exc:
            if not current:
                raise  # not about a message (definitions, the lock): the task's policy
            inbound = current[-1]
            logger.exception("processing inbound %s of contact %s failed", inbound.pk, contact_id)
            error = f"{type(exc).__name__}: {exc}"
            if not inbound_attempt_fail(inbound_id=inbound.pk, error=error, now=now):
                return {"processed": 0, "replies": 0, "failed": 1, "parked": parked}
            parked += 1
            continue
        if parked:
            result["parked"] = parked
        return result


@transaction.atomic
def _process_batch(
    *, contact_id: int, now: datetime, current: list[InboundMessage]
) -> dict[str, int]:
    # The lock comes first: two workers with messages of the same contact queue here, so
    # replies follow the messages' order and each message is answered once.
    state = contact_state_lock(contact_id)
    if state is None:
        return {"processed": 0, "replies": 0}
    contact = state.contact
    pending = list(
        InboundMessage.objects.filter(
            contact_id=contact_id, processed_at__isnull=True, parked_at__isnull=True
        ).order_by("id")
    )
    if not pending:
        return {"processed": 0, "replies": 0}
    replies = 0
    if not contact.blocked:
        replies = _run_messages(lock=state, pending=pending, now=now, current=current)
    InboundMessage.objects.filter(pk__in=[m.pk for m in pending]).update(processed_at=now)
    return {"processed": len(pending), "replies": replies}


def _run_messages(
    *,
    lock: ContactState,
    pending: list[InboundMessage],
    now: datetime,
    current: list[InboundMessage],
) -> int:
    contact = lock.contact
    definitions = get_definitions()
    options = engine_options()
    actions = {name: _in_savepoint(func) for name, func in registered_actions().items()}
    active: ConversationSession | None = None
    for row in open_sessions_for_contact(contact.pk):
        if row.status == SessionStatus.ACTIVE:
            active = row
            if contact.needs_human:
                # Handed over by an operator (or the contact admin) while a flow ran: the
                # session stops here, so it is neither continued nor swept.
                ConversationSession.objects.filter(pk=row.pk, status=SessionStatus.ACTIVE).update(
                    status=SessionStatus.HANDED_OVER, ended_reason="handover"
                )
                active = None
        elif not contact.needs_human:
            # Handed over, but an operator cleared needs_human on the contact directly: the
            # handover is over, close the session so it does not linger as open.
            ConversationSession.objects.filter(pk=row.pk).update(
                ended_at=now, ended_reason="resolved"
            )
    if contact.needs_human and lock.handed_over_at is None:
        # needs_human set outside flows (the contact admin): record when the human took over.
        state_mark_handed_over(state=lock, now=now, reason="contact marked as needing a human")
    elif not contact.needs_human and lock.handed_over_at is not None:
        # needs_human cleared outside flows: the hand-over is over.
        ContactState.objects.filter(pk=contact.pk).update(
            handed_over_at=None, handover_reason="", agent_replied_at=None, flagged_at=None
        )
    replies = 0
    fields = contact_fields(contact)
    for inbound in pending:
        current.append(inbound)
        if contact.needs_human:
            # Handed over: an operator answers. The message is still marked processed.
            continue
        activity_at = inbound.received_at or now
        if active is not None and active.expires_at and active.expires_at <= activity_at:
            # The message came after expiry but before the sweep: expire now (the same
            # idempotency key as the sweep, so never twice), then treat it as a fresh start.
            ConversationSession.objects.filter(pk=active.pk, status=SessionStatus.ACTIVE).update(
                status=SessionStatus.EXPIRED, ended_at=now, ended_reason="idle timeout"
            )
            flow = definitions["flows"].get(definitions["flow_ids"].get(active.flow_id, ""))
            timeout_message_send(
                contact=contact,
                session_id=active.pk,
                context=active.context,
                template=flow["timeout_message"] if flow else "",
                now=now,
                check_window=False,
                number=inbound.number,
            )
            active = None
        state = _state_of(active, definitions) if active is not None else None
        try:
            outcome = handle_message(
                definitions,
                state,
                inbound_to_message(inbound),
                fields,
                actions=actions,
                options=options,
            )
        except Exception:  # the engine must never leave a message unanswered
            logger.exception(
                "flow engine failed on inbound %s of contact %s", inbound.pk, contact.pk
            )
            outcome = _error_outcome(state)
        _log_outcome(outcome, inbound)
        active = _persist(
            contact=contact,
            outcome=outcome,
            definitions=definitions,
            activity_at=activity_at,
            now=now,
        )
        replies += _queue_replies(contact=contact, inbound=inbound, outcome=outcome)
        if outcome.handover:
            state_mark_handed_over(state=lock, now=now, reason="flow hand-over step")
            logger.info("contact %s handed over to a human (inbound %s)", contact.pk, inbound.pk)
    return replies
