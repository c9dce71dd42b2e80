"""Pure parsing of WhatsApp Cloud API webhook bodies into the parts we use.

No I/O and no Django. Strict about what we read (types, lengths that fit our columns, epoch
timestamps) and total over everything else: any JSON yields a `WebhookBatch`, whose `skipped`
says what was left out and why, so a malformed part is logged, never a 500 (which Meta would
retry for seven days). Every entry, change, message and status of a batched POST is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_DEPTH = 64
WAMID_MAX = 255
WA_ID_MAX = 32
TYPE_MAX = 32
REPLY_ID_MAX = 256
USER_ID_MAX = 128
PROFILE_NAME_MAX = 256
BIZ_OPAQUE_MAX = 512
INT32_MAX = 2**31 - 1

STATUS_VALUES = frozenset({"sent", "delivered", "read", "failed"})
# Template webhooks (WABA fields), read into WebhookBatch.template_events.
TEMPLATE_FIELDS = frozenset(
    {
        "message_template_status_update",
        "template_category_update",
        "message_template_components_update",
        "message_template_quality_update",
    }
)
TEMPLATE_NAME_MAX = 512
TEMPLATE_LANGUAGE_MAX = 16
TEMPLATE_ID_MAX = 64
WABA_ID_MAX = 64
MEDIA_TYPES = frozenset({"image", "video", "document", "audio", "sticker"})


class PayloadError(ValueError):
    """The body is not a JSON object we can read at all (answer 400)."""


@dataclass(frozen=True)
class ContactProfile:
    wa_id: str
    profile_name: str = ""
    user_id: str = ""


@dataclass(frozen=True)
class ParsedMessage:
    wamid: str
    wa_id: str
    phone_number_id: str
    message_type: str
    sent_at: datetime
    payload: dict[str, Any]
    text: str = ""
    reply_id: str = ""
    context_wamid: str = ""


@dataclass(frozen=True)
class ParsedStatus:
    wamid: str
    status: str
    timestamp: datetime
    phone_number_id: str = ""
    recipient_id: str = ""
    biz_opaque_callback_data: str = ""
    error_code: int | None = None
    error_details: str = ""


@dataclass(frozen=True)
class TemplateEvent:
    """One template webhook change: which template (WABA, name, language) and its value.

    `kind` is the change's field name; `value` the change's value as sent (the reader of each
    field picks what it needs); `time` is the entry's epoch time (Meta's, for ordering).
    """

    kind: str
    waba_id: str
    name: str
    language: str
    template_id: str = ""
    time: datetime | None = None
    value: dict[str, Any] = field(default_factory=dict)


@dataclass
class WebhookBatch:
    messages: list[ParsedMessage] = field(default_factory=list)
    statuses: list[ParsedStatus] = field(default_factory=list)
    template_events: list[TemplateEvent] = field(default_factory=list)
    contacts: dict[str, ContactProfile] = field(default_factory=dict)
    unhandled: list[str] = field(default_factory=list)  # kinds of events we do not handle
    skipped: list[str] = field(default_factory=list)  # malformed parts, with the reason


# --- decoding ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"{name} is not valid JSON")


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return True


def clean_text(value: str) -> str:
    """Text any database accepts: no NUL (PostgreSQL refuses it), no lone surrogates."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean_json(value: Any) -> Any:
    """A copy of decoded JSON whose every string (keys too) is clean_text()."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item) for item in value]
    return value


def load_json(body: bytes) -> Any:
    """Decode a webhook body strictly: UTF-8, real JSON (no NaN), bounded nesting."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"broken JSON: {exc}"[:200]) from exc
    if not _depth_ok(data, MAX_DEPTH):
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH}")
    return clean_json(data)


# --- small strict readers ---------------------------------------------------------------------


def _str(value: Any, limit: int | None = None) -> str:
    if not isinstance(value, str):
        return ""
    return value[:limit] if limit is not None else value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_timestamp(value: Any) -> datetime | None:
    """Meta sends epoch seconds as a string ("1749416383"); an int is tolerated."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _error(errors: Any) -> tuple[int | None, str]:
    first = _dict(_list(errors)[0]) if _list(errors) else {}
    code = first.get("code")
    if isinstance(code, bool) or not isinstance(code, int) or abs(code) > INT32_MAX:
        code = None
    parts = [_str(first.get("message")), _str(_dict(first.get("error_data")).get("details"))]
    return code, " | ".join(p for p in parts if p)[:1000]


# --- messages -----------------------------------------------------------------------------------


def message_content(message: dict[str, Any]) -> tuple[str, str, str]:
    """(text, reply_id, context_wamid) of one inbound message, by type."""
    kind = _str(message.get("type"))
    text = reply_id = ""
    context_wamid = _str(_dict(message.get("context")).get("id"), WAMID_MAX)
    if kind == "text":
        text = _str(_dict(message.get("text")).get("body"))
    elif kind == "interactive":
        interactive = _dict(message.get("interactive"))
        sub = _str(interactive.get("type"))
        if sub in ("button_reply", "list_reply"):
            reply = _dict(interactive.get(sub))
            reply_id = _str(reply.get("id"), REPLY_ID_MAX)
            text = _str(reply.get("title"))
        elif sub == "nfm_reply":  # a WhatsApp Flow completion
            reply = _dict(interactive.get("nfm_reply"))
            text = _str(reply.get("body"))
            reply_id = _str(reply.get("name"), REPLY_ID_MAX)
    elif kind == "button":  # a template's quick-reply button
        button = _dict(message.get("button"))
        reply_id = _str(button.get("payload"), REPLY_ID_MAX)
        text = _str(button.get("text"))
    elif kind in MEDIA_TYPES:
        text = _str(_dict(message.get(kind)).get("caption"))
    elif kind == "location":
        location = _dict(message.get("location"))
        text = _str(location.get("name")) or _str(location.get("address"))
    elif kind == "reaction":
        reaction = _dict(message.get("reaction"))
        # An empty or missing emoji means the reaction was removed.
        text = _str(reaction.get("emoji"))
        context_wamid = _str(reaction.get("message_id"), WAMID_MAX) or context_wamid
    elif kind == "system":
        text = _str(_dict(message.get("system")).get("body"))
    elif kind == "order":
        text = _str(_dict(message.get("order")).get("text"))
    return text, reply_id, context_wamid


def _parse_message(
    raw: Any, phone_number_id: str, where: str, batch: WebhookBatch
) -> ParsedMessage | None:
    message = _dict(raw)
    wamid = message.get("id")
    wa_id = message.get("from")
    sent_at = parse_timestamp(message.get("timestamp"))
    kind = message.get("type")
    if not isinstance(wamid, str) or not wamid or len(wamid) > WAMID_MAX:
        batch.skipped.append(f"{where}: message without a usable id")
        return None
    if not isinstance(wa_id, str) or not wa_id or len(wa_id) > WA_ID_MAX:
        batch.skipped.append(f"{where}: message {wamid} without a usable sender")
        return None
    if sent_at is None:
        batch.skipped.append(f"{where}: message {wamid} without an epoch timestamp")
        return None
    if not isinstance(kind, str) or not kind:
        kind = "unknown"
    text, reply_id, context_wamid = message_content(message)
    return ParsedMessage(
        wamid=wamid,
        wa_id=wa_id,
        phone_number_id=phone_number_id,
        message_type=kind[:TYPE_MAX],
        sent_at=sent_at,
        payload=message,
        text=text,
        reply_id=reply_id,
        context_wamid=context_wamid,
    )


def _parse_status(
    raw: Any, phone_number_id: str, where: str, batch: WebhookBatch
) -> ParsedStatus | None:
    status = _dict(raw)
    wamid = status.get("id")
    value = status.get("status")
    timestamp = parse_timestamp(status.get("timestamp"))
    if not isinstance(wamid, str) or not wamid or len(wamid) > WAMID_MAX:
        batch.skipped.append(f"{where}: status without a usable id")
        return None
    if value not in STATUS_VALUES:
        # e.g. "played" (voice notes) or "deleted": nothing of ours to move.
        batch.unhandled.append(f"status:{_str(value, 32) or '?'}")
        return None
    if timestamp is None:
        batch.skipped.append(f"{where}: status of {wamid} without an epoch timestamp")
        return None
    code, details = _error(status.get("errors")) if value == "failed" else (None, "")
    return ParsedStatus(
        wamid=wamid,
        status=value,
        timestamp=timestamp,
        phone_number_id=phone_number_id,
        recipient_id=_str(status.get("recipient_id"), WA_ID_MAX),
        biz_opaque_callback_data=_str(status.get("biz_opaque_callback_data"), BIZ_OPAQUE_MAX),
        error_code=code,
        error_details=details,
    )


def _parse_contacts(value: dict[str, Any], batch: WebhookBatch) -> None:
    for raw in _list(value.get("contacts")):
        contact = _dict(raw)
        wa_id = contact.get("wa_id")
        if not isinstance(wa_id, str) or not wa_id or len(wa_id) > WA_ID_MAX:
            continue
        batch.contacts[wa_id] = ContactProfile(
            wa_id=wa_id,
            profile_name=_str(_dict(contact.get("profile")).get("name"), PROFILE_NAME_MAX),
            user_id=_str(contact.get("user_id"), USER_ID_MAX),
        )


def _parse_messages_change(value: dict[str, Any], where: str, batch: WebhookBatch) -> None:
    phone_number_id = _str(_dict(value.get("metadata")).get("phone_number_id"), 64)
    messages = _list(value.get("messages"))
    statuses = _list(value.get("statuses"))
    if messages:
        _parse_contacts(value, batch)
    for index, raw in enumerate(messages):
        parsed = _parse_message(raw, phone_number_id, f"{where}.messages[{index}]", batch)
        if parsed is not None:
            batch.messages.append(parsed)
    for index, raw in enumerate(statuses):
        parsed_status = _parse_status(raw, phone_number_id, f"{where}.statuses[{index}]", batch)
        if parsed_status is not None:
            batch.statuses.append(parsed_status)
    if value.get("errors") is not None:
        # System-level errors (e.g. 130429 with no message attached): logged by the caller.
        code, details = _error(value.get("errors"))
        batch.unhandled.append(f"errors:{code}:{details[:100]}")
    if not messages and not statuses and value.get("errors") is None:
        batch.unhandled.append("messages:empty")


def _parse_template_change(
    field_name: str, value: dict[str, Any], entry: dict[str, Any], where: str, batch: WebhookBatch
) -> None:
    name = value.get("message_template_name")
    language = value.get("message_template_language")
    if not isinstance(name, str) or not name or len(name) > TEMPLATE_NAME_MAX:
        batch.skipped.append(f"{where}: {field_name} without a usable template name")
        return
    if not isinstance(language, str) or not language or len(language) > TEMPLATE_LANGUAGE_MAX:
        batch.skipped.append(f"{where}: {field_name} of {name} without a usable language")
        return
    template_id = value.get("message_template_id")
    if isinstance(template_id, int) and not isinstance(template_id, bool):
        template_id = str(template_id)  # an int in webhooks, a string in the Graph list
    batch.template_events.append(
        TemplateEvent(
            kind=field_name,
            waba_id=_str(entry.get("id"), WABA_ID_MAX),
            name=name,
            language=language,
            template_id=_str(template_id, TEMPLATE_ID_MAX),
            time=parse_timestamp(entry.get("time")),
            value=value,
        )
    )


def parse_event(data: Any) -> WebhookBatch:
    """Read every entry and change of a webhook body. Never raises for a dict or list input."""
    if not isinstance(data, dict):
        raise PayloadError("the body is not a JSON object")
    batch = WebhookBatch()
    kind = data.get("object")
    if kind != "whatsapp_business_account":
        batch.unhandled.append(f"object:{_str(kind, 64) or '?'}")
        return batch
    for e_index, entry in enumerate(_list(data.get("entry"))):
        for c_index, change in enumerate(_list(_dict(entry).get("changes"))):
            change = _dict(change)
            field_name = change.get("field")
            value = change.get("value")
            where = f"entry[{e_index}].changes[{c_index}]"
            if field_name in TEMPLATE_FIELDS and isinstance(value, dict):
                _parse_template_change(field_name, value, _dict(entry), where, batch)
                continue
            if field_name != "messages" or not isinstance(value, dict):
                batch.unhandled.append(f"field:{_str(field_name, 64) or '?'}")
                continue
            _parse_messages_change(value, where, batch)
    return batch
