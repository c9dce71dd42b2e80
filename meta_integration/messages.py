"""Pure builders for Graph API message objects, enforcing Meta's documented limits.

Each returns the message object without `messaging_product`/`to`/`recipient_type` (the client
adds those when it sends). A value Meta would refuse raises MessageValidationError here, before
a row is ever queued, so bad flow config is an admin form error rather than a failed send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TEXT_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_ROWS_MAX = 10
LIST_SECTIONS_MAX = 10
LIST_BUTTON_MAX = 20
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
SECTION_TITLE_MAX = 24


class MessageValidationError(ValueError):
    """A message Meta would refuse; the text says which field and which limit."""


def _require(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MessageValidationError(f"{field} is required")
    if len(value) > limit:
        raise MessageValidationError(f"{field} is {len(value)} characters; the limit is {limit}")
    return value


def _optional(value: str | None, field: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    return _require(value, field, limit)


def text_message(body: str, *, preview_url: bool = False) -> dict[str, Any]:
    _require(body, "text body", TEXT_BODY_MAX)
    return {"type": "text", "text": {"preview_url": preview_url, "body": body}}


def _interactive(
    kind: str, body: str, action: dict[str, Any], header: str | None, footer: str | None
) -> dict[str, Any]:
    interactive: dict[str, Any] = {
        "type": kind,
        "body": {"text": _require(body, "body", INTERACTIVE_BODY_MAX)},
        "action": action,
    }
    if _optional(header, "header", HEADER_TEXT_MAX):
        interactive["header"] = {"type": "text", "text": header}
    if _optional(footer, "footer", FOOTER_MAX):
        interactive["footer"] = {"text": footer}
    return {"type": "interactive", "interactive": interactive}


def buttons_message(
    body: str,
    buttons: Sequence[dict[str, str]],
    *,
    header: str | None = None,
    footer: str | None = None,
) -> dict[str, Any]:
    """Reply buttons: 1 to 3 of {"id", "title"}, titles unique within the message."""
    if not buttons:
        raise MessageValidationError("at least one button is required")
    if len(buttons) > BUTTONS_MAX:
        raise MessageValidationError(f"{len(buttons)} buttons; the limit is {BUTTONS_MAX}")
    titles = [_require(b.get("title", ""), "button title", BUTTON_TITLE_MAX) for b in buttons]
    if len(set(titles)) != len(titles):
        raise MessageValidationError("button titles must be unique within a message")
    ids = [_require(b.get("id", ""), "button id", BUTTON_ID_MAX) for b in buttons]
    action = {
        "buttons": [
            {"type": "reply", "reply": {"id": i, "title": t}}
            for i, t in zip(ids, titles, strict=True)
        ]
    }
    return _interactive("button", body, action, header, footer)


def list_message(
    body: str,
    button: str,
    sections: Sequence[dict[str, Any]],
    *,
    header: str | None = None,
    footer: str | None = None,
) -> dict[str, Any]:
    """A list: sections of {"title", "rows": [{"id", "title", "description"?}]}.

    At most 10 rows across all sections; every section carries a title (clients always send
    one, and Meta requires it when there is more than one).
    """
    _require(button, "list button", LIST_BUTTON_MAX)
    if not sections:
        raise MessageValidationError("at least one section is required")
    if len(sections) > LIST_SECTIONS_MAX:
        raise MessageValidationError(f"{len(sections)} sections; the limit is {LIST_SECTIONS_MAX}")
    built_sections = []
    row_ids: set[str] = set()
    total_rows = 0
    for index, section in enumerate(sections):
        title = _require(section.get("title", ""), f"section {index} title", SECTION_TITLE_MAX)
        rows = section.get("rows") or []
        if not rows:
            raise MessageValidationError(f"section {index} has no rows")
        built_rows = []
        for row in rows:
            row_id = _require(row.get("id", ""), "row id", ROW_ID_MAX)
            if row_id in row_ids:
                raise MessageValidationError(f"row id {row_id!r} is used twice")
            row_ids.add(row_id)
            built = {
                "id": row_id,
                "title": _require(row.get("title", ""), "row title", ROW_TITLE_MAX),
            }
            description = _optional(row.get("description"), "row description", ROW_DESCRIPTION_MAX)
            if description:
                built["description"] = description
            built_rows.append(built)
        total_rows += len(built_rows)
        built_sections.append({"title": title, "rows": built_rows})
    if total_rows > LIST_ROWS_MAX:
        raise MessageValidationError(f"{total_rows} rows in all; the limit is {LIST_ROWS_MAX}")
    action = {"button": button, "sections": built_sections}
    return _interactive("list", body, action, header, footer)


def template_message(
    name: str, language: str = "en_US", body_params: Sequence[str] | None = None
) -> dict[str, Any]:
    """An approved template. Without parameters there is no `components` key (as Meta expects)."""
    _require(name, "template name", 512)
    _require(language, "template language", 16)
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if body_params:
        template["language"]["policy"] = "deterministic"
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": str(p)} for p in body_params]}
        ]
    return {"type": "template", "template": template}


def preview_text(message: dict[str, Any]) -> str:
    """A short readable text of a message object, for the admin and logs."""
    kind = message.get("type")
    if kind == "text":
        return message["text"]["body"]
    if kind == "interactive":
        return message["interactive"]["body"]["text"]
    if kind == "template":
        return f"[template {message['template']['name']}]"
    return f"[{kind}]"
