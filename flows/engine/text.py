"""Text rules: normalisation, keyword matching and placeholder substitution.

Placeholders are a single regex pass over the author's text, never a template language: the
values inserted are not scanned again, so a customer who types "{{ context.secret }}" as their
name gets exactly that text back, and no attribute or method lookup can ever happen.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

WORD_RE = re.compile(r"\w+")
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
# The contact fields a flow text may show. Anything else about a contact stays out of reach.
CONTACT_FIELDS = frozenset({"name", "profile_name", "wa_id"})
MAX_CONTEXT_DEPTH = 4


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: NFKD, combining marks dropped, casefolded, one space."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def words(text: str) -> list[str]:
    return WORD_RE.findall(normalize(text))


def compile_keyword(keyword: str) -> tuple[str, ...] | str:
    """Word tokens of a keyword; a keyword with no word characters (an emoji) stays a string."""
    tokens = tuple(words(keyword))
    return tokens if tokens else normalize(keyword)


def keyword_matches(keyword: tuple[str, ...] | str, text: str) -> bool:
    """Whole words in order (or the whole message); never a substring ("hi" is not in "this")."""
    if isinstance(keyword, str):
        return bool(keyword) and normalize(text) == keyword
    tokens = words(text)
    size = len(keyword)
    return any(tuple(tokens[i : i + size]) == keyword for i in range(len(tokens) - size + 1))


def find_trigger(
    triggers: Sequence[tuple[tuple[str, ...] | str, str]], texts: Iterable[str]
) -> str | None:
    """The first flow whose keyword matches any of the texts; `triggers` is priority-ordered."""
    candidates = [t for t in texts if t]
    for keyword, flow_name in triggers:
        if any(keyword_matches(keyword, text) for text in candidates):
            return flow_name
    return None


def placeholder_allowed(path: str) -> bool:
    parts = path.split(".")
    if len(parts) == 1:
        return parts[0] in CONTACT_FIELDS
    if parts[0] == "contact":
        return len(parts) == 2 and parts[1] in CONTACT_FIELDS
    return parts[0] == "context" and 2 <= len(parts) <= MAX_CONTEXT_DEPTH + 1


def unknown_placeholders(text: str) -> list[str]:
    return [
        m.group(1)
        for m in PLACEHOLDER_RE.finditer(text or "")
        if not placeholder_allowed(m.group(1))
    ]


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, dict | list | tuple):
        return ""  # containers never render (no repr of internal data)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def lookup(path: str, *, contact: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    """Resolve an allowed path by plain dict lookups only; None when absent."""
    parts = path.split(".")
    if len(parts) == 1:
        return contact.get(parts[0])
    if parts[0] == "contact":
        return contact.get(parts[1])
    value: Any = context
    for part in parts[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def render(template: str, *, contact: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """Substitute allowed placeholders in one pass; unknown ones are left as written."""
    if not template or "{{" not in template:
        return template

    def substitute(match: re.Match[str]) -> str:
        path = match.group(1)
        if not placeholder_allowed(path):
            return match.group(0)
        return _scalar(lookup(path, contact=contact, context=context))

    return PLACEHOLDER_RE.sub(substitute, template)


# Fields of a message spec that are author text and may carry placeholders. Button and row
# titles/ids are not expanded: Meta limits them to 20-24 characters and they identify choices.
RENDERED_FIELDS = ("body", "header", "footer")


def render_spec(
    spec: Mapping[str, Any], *, contact: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    rendered = dict(spec)
    for key in RENDERED_FIELDS:
        if isinstance(rendered.get(key), str):
            rendered[key] = render(rendered[key], contact=contact, context=context)
    if isinstance(rendered.get("params"), list):
        rendered["params"] = [
            render(str(p), contact=contact, context=context) for p in rendered["params"]
        ]
    return rendered
