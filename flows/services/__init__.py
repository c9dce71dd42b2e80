"""Writes of the flows app (keyword-only, transactional where they write)."""

from __future__ import annotations

from flows.services.config import engine_options
from flows.services.importing import FlowImportError, flows_import, flows_import_validate
from flows.services.processing import (
    SessionConflict,
    contact_messages_process,
    inbound_to_message,
)
from flows.services.sessions import (
    contact_fields,
    handover_resolve,
    idle_timeout_seconds,
    session_expire,
    sessions_expire_idle,
    sessions_prune,
    timeout_message_send,
)

__all__ = [
    "FlowImportError",
    "SessionConflict",
    "contact_fields",
    "contact_messages_process",
    "engine_options",
    "flows_import",
    "flows_import_validate",
    "handover_resolve",
    "idle_timeout_seconds",
    "inbound_to_message",
    "session_expire",
    "sessions_expire_idle",
    "sessions_prune",
    "timeout_message_send",
]
