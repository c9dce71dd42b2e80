"""Message specs (the flows' plain-data description of a send) -> Graph message objects.

The builders in meta_integration.messages hold Meta's limits; this module is the one bridge,
used to build sends at run time and to validate step config in the admin and on import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meta_integration import messages as builders
from meta_integration.messages import MessageValidationError


def build_message(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Raise MessageValidationError (or KeyError/TypeError for a malformed spec)."""
    kind = spec.get("type")
    if kind == "text":
        return builders.text_message(spec["body"])
    if kind == "buttons":
        return builders.buttons_message(
            spec["body"], spec["buttons"], header=spec.get("header"), footer=spec.get("footer")
        )
    if kind == "list":
        return builders.list_message(
            spec["body"],
            spec["button"],
            spec["sections"],
            header=spec.get("header"),
            footer=spec.get("footer"),
        )
    if kind == "template":
        return builders.template_message(
            spec["name"], spec.get("language") or "en_US", spec.get("params") or None
        )
    raise MessageValidationError(f"unknown message type {kind!r}")


def _field_of(kind: str, text: str) -> str:
    """Which spec field a builder's error is about, so the error names it (config.buttons)."""
    lowered = text.lower()
    if kind == "list" and lowered.startswith("list button"):
        return "button"
    for prefix, field in (
        ("header", "header"),
        ("footer", "footer"),
        ("template name", "name"),
        ("template language", "language"),
    ):
        if lowered.startswith(prefix):
            return field
    if "button" in lowered and kind == "buttons":
        return "buttons"
    if any(word in lowered for word in ("row", "section")):
        return "sections"
    return "body"


def check_message(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """[(field, message)] of what Meta would refuse in this spec; [] when it would send."""
    try:
        build_message(spec)
    except MessageValidationError as exc:
        return [(_field_of(str(spec.get("type")), str(exc)), str(exc))]
    except (KeyError, TypeError, AttributeError) as exc:
        return [("", f"malformed message: {exc!r}")]
    return []
