"""The message-template catalogue of each WhatsApp Business Account (WABA).

Outside the 24-hour window Meta only delivers APPROVED templates, and it refuses a template
send with its own codes (132001 unknown in that language, 132000 wrong parameter count, 132015
paused, 132016 disabled). The catalogue is synced from `GET /{waba-id}/message_templates`
(paged) and kept current by the template webhooks, so a send is checked here first and a
refused one fails at once with Meta's code, visible in the admin, without a Graph call.

Pure helpers (no I/O) first, then the services that read and write `MessageTemplate`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meta_integration import graph_api
from meta_integration.models import MessageTemplate, TemplateStatus, WhatsAppNumber
from meta_integration.parsing import TemplateEvent
from whatsappcrm_backend.publishing import publish_on_commit

logger = logging.getLogger(__name__)

# Meta's codes for a template send it refuses (see external_services.md section 2b).
TEMPLATE_PARAMS_MISMATCH = 132000
TEMPLATE_NOT_FOUND = 132001
TEMPLATE_PAUSED = 132015
TEMPLATE_DISABLED = 132016

# `{{1}}` (positional) or `{{first_name}}` (named parameters); spaces inside are tolerated.
PLACEHOLDER = re.compile(r"\{\{\s*([0-9]+|[a-z_][a-z0-9_]*)\s*\}\}")
NAME_MAX = 512
LANGUAGE_MAX = 16
CATEGORY_MAX = 32
REASON_MAX = 200
STATUSES = frozenset(TemplateStatus.values)
SYNC_TASK = "sync_message_templates_task"
# Webhook `event` values that are not catalogue statuses, and the status they leave behind.
EVENT_STATUS = {
    "FLAGGED": TemplateStatus.APPROVED,  # quality warning: still sendable until PAUSED
    "REINSTATED": TemplateStatus.APPROVED,
    "UNPAUSED": TemplateStatus.APPROVED,
    "ARCHIVED": TemplateStatus.DELETED,
    "UNARCHIVED": TemplateStatus.APPROVED,
    "LIMIT_EXCEEDED": TemplateStatus.PAUSED,
}


class TemplateSyncError(RuntimeError):
    """The Graph API refused or failed the catalogue request; nothing was changed."""


# --- pure helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRow:
    """One template of a Graph `message_templates` page, ready to upsert."""

    name: str
    language: str
    status: str
    category: str = ""
    template_id: str = ""
    body_parameter_count: int = 0
    components: list[Any] = field(default_factory=list)
    rejected_reason: str = ""


def placeholder_count(text: str) -> int:
    """Distinct `{{n}}`/`{{name}}` placeholders of a template text: what a send must fill."""
    return len(set(PLACEHOLDER.findall(text or "")))


def body_parameter_count(components: Any) -> int:
    """Placeholders of the BODY component (case-insensitive type, as Meta mixes both)."""
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == "BODY":
            text = component.get("text")
            return placeholder_count(text) if isinstance(text, str) else 0
    return 0


def _str(value: Any, limit: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # Meta's template ids come as strings in lists, ints in webhooks
    return value[:limit] if isinstance(value, str) else ""


def parse_template(raw: Any) -> TemplateRow | None:
    """A row from one Graph template object, or None when it lacks a name/language/status."""
    if not isinstance(raw, dict):
        return None
    name = raw.get("name")
    language = raw.get("language")
    status = str(raw.get("status") or "").upper()
    if not isinstance(name, str) or not name or len(name) > NAME_MAX:
        return None
    if not isinstance(language, str) or not language or len(language) > LANGUAGE_MAX:
        return None
    if status not in STATUSES:
        return None
    components = raw.get("components") if isinstance(raw.get("components"), list) else []
    return TemplateRow(
        name=name,
        language=language,
        status=status,
        category=_str(raw.get("category"), CATEGORY_MAX).upper(),
        template_id=_str(raw.get("id"), 64),
        body_parameter_count=body_parameter_count(components),
        components=components,
        rejected_reason=_str(raw.get("rejected_reason"), REASON_MAX)
        if status == TemplateStatus.REJECTED
        else "",
    )


def parse_template_page(body: Any) -> tuple[list[TemplateRow], str, list[str]]:
    """(rows, the `after` cursor of the next page or "", skipped items) of one Graph page.

    Meta puts `paging.next` only when there is a next page; `paging.cursors.after` is present
    on the last page too, so `next` decides whether to go on.
    """
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise TemplateSyncError("the template list has no `data` array")
    rows: list[TemplateRow] = []
    skipped: list[str] = []
    for index, raw in enumerate(body["data"]):
        row = parse_template(raw)
        if row is None:
            skipped.append(f"data[{index}]")
        else:
            rows.append(row)
    paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
    cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
    after = cursors.get("after") if isinstance(cursors.get("after"), str) else ""
    return rows, (after if paging.get("next") else ""), skipped


def sent_template(payload: Any) -> tuple[str, str, int] | None:
    """(name, language code, body parameters supplied) of a Graph `template` message."""
    if not isinstance(payload, dict):
        return None
    template = payload.get("template")
    if not isinstance(template, dict):
        return None
    name = template.get("name")
    language = template.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    if not isinstance(name, str) or not name or not isinstance(code, str) or not code:
        return None
    supplied = 0
    for component in template.get("components") or []:
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "body":
            parameters = component.get("parameters")
            supplied += len(parameters) if isinstance(parameters, list) else 0
    return name, code, supplied


def refusal_rule(
    *,
    name: str,
    language: str,
    supplied: int,
    status: str | None,
    expected: int = 0,
    other_languages: Iterable[str] = (),
) -> tuple[int, str] | None:
    """Meta's verdict on a template send, from the catalogue row (status None: no row)."""
    if status is None or status in (
        TemplateStatus.DELETED,
        TemplateStatus.PENDING_DELETION,
    ):
        others = sorted(other_languages)
        hint = f"; it exists in {', '.join(others)}" if others else ""
        return TEMPLATE_NOT_FOUND, f"template {name} does not exist in {language}{hint}"
    if status == TemplateStatus.PAUSED:
        return TEMPLATE_PAUSED, f"template {name} ({language}) is paused by Meta (low quality)"
    if status == TemplateStatus.DISABLED:
        return TEMPLATE_DISABLED, f"template {name} ({language}) is disabled by Meta"
    if status != TemplateStatus.APPROVED:
        # PENDING, REJECTED, IN_APPEAL: Meta only finds approved translations.
        return TEMPLATE_NOT_FOUND, (
            f"template {name} ({language}) is {status.lower()}, not approved: "
            "it does not exist for sending"
        )
    if supplied != expected:
        return TEMPLATE_PARAMS_MISMATCH, (
            f"template {name} ({language}) takes {expected} body parameters; {supplied} given"
        )
    return None


# --- services -----------------------------------------------------------------------------------


def template_refusal(*, waba_id: str, payload: dict[str, Any]) -> tuple[int, str] | None:
    """None when this template send may go to Meta, else Meta's (code, details).

    A WABA whose catalogue was never synced (no row at all) is not judged: Meta decides. A
    payload that is not a readable template is left to Meta too (it answers 131008/100).
    """
    sent = sent_template(payload)
    if sent is None or not waba_id:
        return None
    name, language, supplied = sent
    rows = list(
        MessageTemplate.objects.filter(waba_id=waba_id, name=name).values_list(
            "language", "status", "body_parameter_count"
        )
    )
    match = next((row for row in rows if row[0] == language), None)
    if match is None and not rows and not MessageTemplate.objects.filter(waba_id=waba_id).exists():
        return None  # never synced: no opinion
    others = [
        lang
        for lang, status, _ in rows
        if lang != language
        and status not in (TemplateStatus.DELETED, TemplateStatus.PENDING_DELETION)
    ]
    return refusal_rule(
        name=name,
        language=language,
        supplied=supplied,
        status=match[1] if match else None,
        expected=match[2] if match else 0,
        other_languages=others,
    )


def _resolve(number_or_waba: WhatsAppNumber | str) -> tuple[str, WhatsAppNumber | None]:
    if isinstance(number_or_waba, WhatsAppNumber):
        return number_or_waba.waba_id or settings.META_WABA_ID, number_or_waba
    waba_id = str(number_or_waba or "").strip()
    # One of the WABA's numbers carries the token and API version when it has its own.
    number = (
        WhatsAppNumber.objects.filter(waba_id=waba_id, active=True).order_by("pk").first()
        if waba_id
        else None
    )
    return waba_id, number


def templates_sync(
    *,
    number_or_waba: WhatsAppNumber | str,
    page_size: int = 100,
    max_pages: int = 50,
) -> dict[str, Any]:
    """Fetch the WABA's whole catalogue (every page) from Meta, then store it.

    Nothing is written unless every page arrived: a half-read catalogue must not mark the
    unread half DELETED. Raises TemplateSyncError (with Meta's code) when a page fails.
    """
    waba_id, number = _resolve(number_or_waba)
    if not waba_id:
        raise TemplateSyncError("no WABA id: set the number's WABA id or META_WABA_ID")
    rows: list[TemplateRow] = []
    skipped = 0
    after = ""
    for page in range(1, max_pages + 1):
        result = graph_api.message_templates_list(
            waba_id, after=after, limit=page_size, number=number
        )
        if not result.outcome.ok:
            raise TemplateSyncError(
                f"template list of WABA {waba_id}, page {page}: "
                f"{result.outcome.code} {result.outcome.details}"
            )
        page_rows, after, page_skipped = parse_template_page(result.body)
        rows.extend(page_rows)
        skipped += len(page_skipped)
        for part in page_skipped:
            logger.warning("template list of WABA %s: %s unreadable, skipped", waba_id, part)
        if not after:
            break
    else:
        raise TemplateSyncError(f"template list of WABA {waba_id} has more than {max_pages} pages")
    stored = catalogue_store(waba_id=waba_id, rows=rows)
    result = {"waba_id": waba_id, "pages": page, "skipped": skipped, **stored}
    logger.info("templates of WABA %s synced: %s", waba_id, result)
    return result


UPSERT_FIELDS = [
    "template_id",
    "category",
    "status",
    "body_parameter_count",
    "components",
    "rejected_reason",
    "synced_at",
]


@transaction.atomic
def catalogue_store(*, waba_id: str, rows: Iterable[TemplateRow]) -> dict[str, int]:
    """Upsert the WABA's full catalogue; templates Meta no longer lists become DELETED."""
    now = timezone.now()
    by_key = {(row.name, row.language): row for row in rows}  # a repeated key: the last wins
    existing = {
        (name, language): (pk, status)
        for pk, name, language, status in MessageTemplate.objects.filter(
            waba_id=waba_id
        ).values_list("pk", "name", "language", "status")
    }
    MessageTemplate.objects.bulk_create(
        [
            MessageTemplate(
                waba_id=waba_id,
                name=row.name,
                language=row.language,
                template_id=row.template_id,
                category=row.category,
                status=row.status,
                body_parameter_count=row.body_parameter_count,
                components=row.components,
                rejected_reason=row.rejected_reason,
                synced_at=now,
            )
            for row in by_key.values()
        ],
        update_conflicts=True,
        unique_fields=["waba_id", "name", "language"],
        update_fields=UPSERT_FIELDS,
        batch_size=500,
    )
    vanished = [
        pk
        for key, (pk, status) in existing.items()
        if key not in by_key and status != TemplateStatus.DELETED
    ]
    if vanished:
        MessageTemplate.objects.filter(pk__in=vanished).update(
            status=TemplateStatus.DELETED, synced_at=now
        )
    return {
        "templates": len(by_key),
        "created": sum(1 for key in by_key if key not in existing),
        "deleted": len(vanished),
    }


# --- template webhooks --------------------------------------------------------------------------


def status_from_event(event: str) -> str | None:
    """The catalogue status a `message_template_status_update` event leaves, or None."""
    event = (event or "").upper()
    if event in STATUSES:
        return event
    return EVENT_STATUS.get(event)


def components_from_update(value: dict[str, Any]) -> list[dict[str, Any]]:
    """Graph-shaped components from a `message_template_components_update` value."""
    components: list[dict[str, Any]] = []
    title = value.get("message_template_title")
    if isinstance(title, str) and title:
        components.append({"type": "HEADER", "format": "TEXT", "text": title})
    body = value.get("message_template_element")
    components.append({"type": "BODY", "text": body if isinstance(body, str) else ""})
    footer = value.get("message_template_footer")
    if isinstance(footer, str) and footer:
        components.append({"type": "FOOTER", "text": footer})
    buttons = []
    for raw in value.get("message_template_buttons") or []:
        if not isinstance(raw, dict):
            continue
        button = {
            "type": str(raw.get("message_template_button_type", "")),
            "text": str(raw.get("message_template_button_text", "")),
        }
        for source, target in (
            ("message_template_button_url", "url"),
            ("message_template_button_phone_number", "phone_number"),
        ):
            if isinstance(raw.get(source), str):
                button[target] = raw[source]
        buttons.append(button)
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return components


def _event_changes(event: TemplateEvent) -> dict[str, Any] | None:
    """The column updates one template webhook asks for (None: nothing to change)."""
    value = event.value
    if event.kind == "message_template_status_update":
        status = status_from_event(str(value.get("event") or ""))
        if status is None:
            return None
        changes: dict[str, Any] = {"status": status, "rejected_reason": ""}
        if status == TemplateStatus.REJECTED:
            info = value.get("rejection_info")
            detail = info.get("reason") if isinstance(info, dict) else None
            reason = detail if isinstance(detail, str) and detail else value.get("reason")
            changes["rejected_reason"] = _str(reason, REASON_MAX)
        category = _str(value.get("message_template_category"), CATEGORY_MAX).upper()
        if category:
            changes["category"] = category
        return changes
    if event.kind == "template_category_update":
        category = _str(value.get("new_category"), CATEGORY_MAX).upper()
        return {"category": category} if category else None
    if event.kind == "message_template_components_update":
        components = components_from_update(value)
        return {
            "components": components,
            "body_parameter_count": body_parameter_count(components),
        }
    return None  # quality updates: logged only; a PAUSED status follows a RED score


@transaction.atomic
def template_events_apply(events: Iterable[TemplateEvent]) -> dict[str, int]:
    """Apply template webhooks to the catalogue. Idempotent, and order-safe by Meta's time:
    an event older than what the row already reflects (a redelivery, a sync made after it)
    changes nothing. A template we have no row for triggers a sync of its WABA, since a
    webhook does not carry what a send must supply (the parameter count)."""
    counts = {"applied": 0, "stale": 0, "ignored": 0, "unknown": 0}
    to_sync: set[str] = set()
    for event in events:
        if event.kind == "message_template_quality_update":
            logger.info(
                "template %s (%s) of WABA %s quality %s -> %s",
                event.name,
                event.language,
                event.waba_id,
                event.value.get("previous_quality_score"),
                event.value.get("new_quality_score"),
            )
        changes = _event_changes(event)
        if changes is None:
            counts["ignored"] += 1
            continue
        row = (
            MessageTemplate.objects.select_for_update()
            .filter(waba_id=event.waba_id, name=event.name, language=event.language)
            .first()
        )
        if row is None:
            counts["unknown"] += 1
            # A new template of a WABA whose catalogue we keep: fetch it now rather than at the
            # next hourly sync. A WABA never synced is left to that sync (no catalogue, no
            # refusals: Meta decides).
            if event.waba_id and event.kind != "message_template_quality_update":
                to_sync.add(event.waba_id)
            continue
        # Meta's event time has whole seconds: an event of the same second as the row's last
        # update is applied (it is at least as likely newer).
        if event.time is not None and event.time < row.synced_at.replace(microsecond=0):
            counts["stale"] += 1
            continue
        if event.template_id:
            changes["template_id"] = event.template_id
        # synced_at = the time of the newest information the row holds (Meta's event time);
        # update() leaves auto_now alone, so it is set here.
        changes["synced_at"] = event.time or row.synced_at
        MessageTemplate.objects.filter(pk=row.pk).update(**changes)
        counts["applied"] += 1
        logger.info(
            "template %s (%s) of WABA %s: %s %s",
            event.name,
            event.language,
            event.waba_id,
            event.kind,
            {k: v for k, v in changes.items() if k != "components"},
        )
    kept = set(
        MessageTemplate.objects.filter(waba_id__in=to_sync)
        .values_list("waba_id", flat=True)
        .distinct()
    )
    for waba_id in sorted(kept):
        publish_on_commit(SYNC_TASK, waba_id)
    return counts
