"""What Meta refuses, and with which code: the sandbox's validation of /messages bodies.

Pure functions. Codes follow Meta: 100 for an invalid parameter (an over-long text), 131009 for
a bad interactive value (4 buttons, 11 rows, a 21-character title), 131008 for a missing
required parameter, 132001/132000 for an unknown template or a parameter-count mismatch.
"""

from __future__ import annotations

from typing import Any

TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
SECTIONS_MAX = 10
ROWS_MAX = 10
SECTION_TITLE_MAX = 24
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
BIZ_OPAQUE_MAX = 512

MEDIA_TYPES = ("image", "video", "document", "audio", "sticker")
SEND_TYPES = (
    "text",
    "interactive",
    "template",
    "reaction",
    "location",
    "contacts",
    *MEDIA_TYPES,
)
MARK_READ_KEYS = frozenset({"messaging_product", "status", "message_id"})


class Refusal(Exception):
    """Meta would refuse the request with `code`; `details` is error_data.details."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(f"({code}) {details}")
        self.code = code
        self.details = details


def _required_str(obj: dict[str, Any], key: str, where: str, limit: int, code: int) -> str:
    value = obj.get(key)
    if value is None or value == "":
        raise Refusal(131008, f"Required parameter is missing: {where}.{key}")
    if not isinstance(value, str):
        raise Refusal(100, f"Invalid parameter: {where}.{key} must be a string")
    if len(value) > limit:
        raise Refusal(code, f"{where}.{key} is {len(value)} characters; the limit is {limit}")
    return value


def _optional_text(obj: dict[str, Any], key: str, limit: int) -> None:
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, dict):
        raise Refusal(131009, f"Parameter value is not valid: interactive.{key}")
    text = value.get("text")
    if value.get("type", "text") == "text" and (not isinstance(text, str) or len(text) > limit):
        raise Refusal(131009, f"interactive.{key}.text must be a string of at most {limit}")


def validate_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        raise Refusal(131008, "Required parameter is missing: action.buttons")
    if len(buttons) > BUTTONS_MAX:
        raise Refusal(131009, f"{len(buttons)} buttons; the limit is {BUTTONS_MAX}")
    titles: set[str] = set()
    ids: set[str] = set()
    for button in buttons:
        if not isinstance(button, dict) or button.get("type") != "reply":
            raise Refusal(131009, "Parameter value is not valid: button type must be reply")
        reply = button.get("reply")
        if not isinstance(reply, dict):
            raise Refusal(131008, "Required parameter is missing: button.reply")
        title = _required_str(reply, "title", "reply", BUTTON_TITLE_MAX, 131009)
        button_id = _required_str(reply, "id", "reply", BUTTON_ID_MAX, 131009)
        if title in titles or button_id in ids:
            raise Refusal(131009, "Button titles and ids must be unique")
        titles.add(title)
        ids.add(button_id)


def validate_list(action: dict[str, Any]) -> None:
    _required_str(action, "button", "action", LIST_BUTTON_MAX, 131009)
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise Refusal(131008, "Required parameter is missing: action.sections")
    if len(sections) > SECTIONS_MAX:
        raise Refusal(131009, f"{len(sections)} sections; the limit is {SECTIONS_MAX}")
    total = 0
    row_ids: set[str] = set()
    for section in sections:
        if not isinstance(section, dict):
            raise Refusal(131009, "Parameter value is not valid: section")
        if len(sections) > 1 or section.get("title") is not None:
            _required_str(section, "title", "section", SECTION_TITLE_MAX, 131009)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise Refusal(131008, "Required parameter is missing: section.rows")
        for row in rows:
            if not isinstance(row, dict):
                raise Refusal(131009, "Parameter value is not valid: row")
            row_id = _required_str(row, "id", "row", ROW_ID_MAX, 131009)
            _required_str(row, "title", "row", ROW_TITLE_MAX, 131009)
            description = row.get("description")
            if description is not None and (
                not isinstance(description, str) or len(description) > ROW_DESCRIPTION_MAX
            ):
                raise Refusal(131009, f"row.description is longer than {ROW_DESCRIPTION_MAX}")
            if row_id in row_ids:
                raise Refusal(131009, "Row ids must be unique")
            row_ids.add(row_id)
        total += len(rows)
    if total > ROWS_MAX:
        raise Refusal(131009, f"{total} rows in all sections; the limit is {ROWS_MAX}")


def validate_interactive(interactive: dict[str, Any]) -> None:
    kind = interactive.get("type")
    if not kind:
        raise Refusal(131008, "Required parameter is missing: interactive.type")
    if kind not in ("button", "list"):
        return  # cta_url, product, flow...: accepted without deeper checks
    body = interactive.get("body")
    if not isinstance(body, dict):
        raise Refusal(131008, "Required parameter is missing: interactive.body")
    _required_str(body, "text", "body", INTERACTIVE_BODY_MAX, 131009)
    _optional_text(interactive, "header", HEADER_MAX)
    footer = interactive.get("footer")
    if footer is not None and (
        not isinstance(footer, dict)
        or not isinstance(footer.get("text"), str)
        or len(footer["text"]) > FOOTER_MAX
    ):
        raise Refusal(131009, f"interactive.footer.text must be at most {FOOTER_MAX} characters")
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise Refusal(131008, "Required parameter is missing: interactive.action")
    if kind == "button":
        validate_buttons(action)
    else:
        validate_list(action)


def _template_param_count(template: dict[str, Any]) -> int:
    count = 0
    for component in template.get("components") or []:
        if isinstance(component, dict) and component.get("type") == "body":
            count += len(component.get("parameters") or [])
    return count


def validate_template(template: dict[str, Any], templates: dict[str, int] | None) -> None:
    name = _required_str(template, "name", "template", 512, 100)
    language = template.get("language")
    if not isinstance(language, dict) or not language.get("code"):
        raise Refusal(131008, "Required parameter is missing: template.language.code")
    if templates is None:
        return
    if name not in templates:
        raise Refusal(132001, f"Template name does not exist in the translation: {name}")
    if _template_param_count(template) != templates[name]:
        raise Refusal(132000, "Number of parameters does not match the expected number of params")


def validate_send(body: dict[str, Any], templates: dict[str, int] | None = None) -> None:
    """Raise Refusal when Meta would refuse this send body."""
    to = body.get("to")
    if to is None or to == "":
        raise Refusal(131008, "Required parameter is missing: to")
    if not isinstance(to, str) or not to.lstrip("+").isdigit() or len(to) > 20:
        raise Refusal(100, "Invalid parameter: to")
    if body.get("recipient_type", "individual") != "individual":
        raise Refusal(100, "Invalid parameter: recipient_type")
    biz = body.get("biz_opaque_callback_data")
    if biz is not None and (not isinstance(biz, str) or len(biz) > BIZ_OPAQUE_MAX):
        raise Refusal(100, f"biz_opaque_callback_data must be a string of at most {BIZ_OPAQUE_MAX}")
    context = body.get("context")
    if context is not None and (
        not isinstance(context, dict) or not isinstance(context.get("message_id"), str)
    ):
        raise Refusal(100, "Invalid parameter: context.message_id")
    kind = body.get("type", "text")
    if kind not in SEND_TYPES:
        raise Refusal(100, f"Invalid parameter: type {kind!r}")
    obj = body.get(kind)
    if obj is None:
        raise Refusal(131008, f"Required parameter is missing: {kind}")
    if kind == "contacts":
        if not isinstance(obj, list) or not obj:
            raise Refusal(131008, "Required parameter is missing: contacts")
        return
    if not isinstance(obj, dict):
        raise Refusal(100, f"Invalid parameter: {kind}")
    if kind == "text":
        _required_str(obj, "body", "text", TEXT_MAX, 100)
        if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
            raise Refusal(100, "Invalid parameter: text.preview_url")
    elif kind == "interactive":
        validate_interactive(obj)
    elif kind == "template":
        validate_template(obj, templates)
    elif kind in MEDIA_TYPES:
        if not isinstance(obj.get("id"), str) and not isinstance(obj.get("link"), str):
            raise Refusal(131008, f"Required parameter is missing: {kind}.id or {kind}.link")
    elif kind == "reaction":
        _required_str(obj, "message_id", "reaction", 255, 100)
        if not isinstance(obj.get("emoji", ""), str):
            raise Refusal(100, "Invalid parameter: reaction.emoji")
    elif kind == "location":
        for key in ("latitude", "longitude"):
            if isinstance(obj.get(key), bool) or not isinstance(obj.get(key), int | float):
                raise Refusal(131008, f"Required parameter is missing: location.{key}")


def validate_mark_read(body: dict[str, Any]) -> str:
    """The wamid to mark read, or Refusal. The body is exactly the three documented keys."""
    if set(body) != MARK_READ_KEYS:
        raise Refusal(
            100, "Invalid parameter: mark-as-read takes messaging_product, status, message_id"
        )
    if body["status"] != "read":
        raise Refusal(100, "Invalid parameter: status")
    message_id = body["message_id"]
    if (
        not isinstance(message_id, str)
        or not message_id.startswith("wamid.")
        or len(message_id) < 7
    ):
        raise Refusal(131009, "Parameter value is not valid: message_id")
    return message_id
