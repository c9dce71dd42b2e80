"""Writes of the flows app (keyword-only, transactional where they write)."""

from __future__ import annotations

from flows.services.config import engine_options
from flows.services.handover import (
    HandoverError,
    agent_reply_send,
    approved_templates,
    handover_assign,
    handover_resolve,
    handover_start,
    handovers_flag_unanswered,
)
from flows.services.importing import FlowImportError, flows_import, flows_import_validate
from flows.services.poison import inbound_attempt_fail, inbound_replay
from flows.services.processing import (
    SessionConflict,
    contact_messages_process,
    inbound_to_message,
)
from flows.services.sessions import (
    contact_fields,
    idle_timeout_seconds,
    session_expire,
    sessions_expire_idle,
    sessions_prune,
    timeout_message_send,
)

__all__ = [
    "FlowImportError",
    "HandoverError",
    "SessionConflict",
    "agent_reply_send",
    "approved_templates",
    "contact_fields",
    "contact_messages_process",
    "engine_options",
    "flows_import",
    "flows_import_validate",
    "handover_assign",
    "handover_resolve",
    "handover_start",
    "handovers_flag_unanswered",
    "idle_timeout_seconds",
    "inbound_attempt_fail",
    "inbound_replay",
    "inbound_to_message",
    "session_expire",
    "sessions_expire_idle",
    "sessions_prune",
    "timeout_message_send",
]
