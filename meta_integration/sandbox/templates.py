"""The sandbox's template catalogue: what `GET /{waba-id}/message_templates` serves, and
what a template send is checked against, as Meta does.

Every WABA starts with the seeded catalogue (copied on first use), so any WABA id a test or
`make run` uses has the templates the project sends. Pure state + rules: no HTTP here.
"""

from __future__ import annotations

import base64
import copy
import re
import threading
import time
from typing import Any

from meta_integration.sandbox.validation import Refusal

PLACEHOLDER = re.compile(r"\{\{\s*([0-9]+|[a-z_][a-z0-9_]*)\s*\}\}")
STATUSES = frozenset(
    {
        "APPROVED",
        "PENDING",
        "REJECTED",
        "PAUSED",
        "DISABLED",
        "IN_APPEAL",
        "PENDING_DELETION",
        "DELETED",
    }
)
PAGE_LIMIT_DEFAULT = 25  # Meta's default page size for edges
PAGE_LIMIT_MAX = 1000


def _template(
    template_id: str,
    name: str,
    language: str,
    body: str,
    *,
    status: str = "APPROVED",
    category: str = "UTILITY",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "language": language,
        "category": category,
        "status": status,
        "components": [{"type": "BODY", "text": body}],
        "id": template_id,
        **extra,
    }


SEED_TEMPLATES: list[dict[str, Any]] = [
    _template(
        "1000000000000001",
        "ticket_settled",
        "en",
        "Your ticket #{{1}} is settled: {{2}}. Payout: {{3}}.",
    ),
    _template(
        "1000000000000002",
        "hello_world",
        "en_US",
        "Welcome and congratulations!! This message demonstrates your ability to send a "
        "WhatsApp message notification from the Cloud API, hosted by Meta.",
    ),
    _template(
        "1000000000000003",
        "order_update",
        "en",
        "Hello {{1}}, your order {{2}} has been updated.",
    ),
    _template(
        "1000000000000004",
        "promo_paused",
        "en",
        "Big offer for {{1}} this weekend!",
        status="PAUSED",
        category="MARKETING",
    ),
    _template(
        "1000000000000005",
        "old_offer",
        "en",
        "Last chance: {{1}} off everything.",
        status="REJECTED",
        category="MARKETING",
        rejected_reason="INVALID_FORMAT",
    ),
]


def body_parameter_count(template: dict[str, Any]) -> int:
    for component in template.get("components") or []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == "BODY":
            return len(set(PLACEHOLDER.findall(str(component.get("text") or ""))))
    return 0


def sent_body_parameters(template: dict[str, Any]) -> int:
    count = 0
    for component in template.get("components") or []:
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "body":
            count += len(component.get("parameters") or [])
    return count


def check_template_send(template: dict[str, Any], known: dict[str, Any] | None) -> None:
    """Raise Refusal as Meta does for a template send; `known` is the catalogue entry."""
    name = template.get("name")
    code = (template.get("language") or {}).get("code")
    if known is None or known["status"] in ("DELETED", "PENDING_DELETION"):
        raise Refusal(132001, f"template name ({name}) does not exist in {code}")
    status = known["status"]
    if status == "PAUSED":
        raise Refusal(132015, f"Template is paused: {name} ({code}) was paused for low quality")
    if status == "DISABLED":
        raise Refusal(132016, f"Template is disabled: {name} ({code}) can no longer be sent")
    if status != "APPROVED":
        # Only approved translations are found by a send (pending, rejected, in appeal).
        raise Refusal(132001, f"template name ({name}) does not exist in {code} ({status})")
    expected = body_parameter_count(known)
    supplied = sent_body_parameters(template)
    if supplied != expected:
        raise Refusal(
            132000,
            f"body: number of localizable_params ({supplied}) does not match the expected "
            f"number of params ({expected})",
        )


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"idx:{index}".encode()).decode()


def _index(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith("idx:"):
            raise ValueError(cursor)
        return max(0, int(text[4:]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refusal(100, f"Invalid parameter: after cursor {cursor!r}") from exc


class TemplateCatalogue:
    """Templates per WABA, behind one lock. Entries are Graph-shaped template objects."""

    def __init__(self, seed: list[dict[str, Any]] | None = None) -> None:
        self._seed = copy.deepcopy(SEED_TEMPLATES if seed is None else seed)
        self._lock = threading.Lock()
        self._by_waba: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._next_id = int(time.time() * 1000) * 1000

    def _catalogue(self, waba_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        catalogue = self._by_waba.get(waba_id)
        if catalogue is None:
            catalogue = {(t["name"], t["language"]): copy.deepcopy(t) for t in self._seed}
            self._by_waba[waba_id] = catalogue
        return catalogue

    def reset(self) -> None:
        with self._lock:
            self._by_waba.clear()

    def find(self, waba_id: str, name: str, language: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._catalogue(waba_id).get((name, language))
            return copy.deepcopy(entry) if entry else None

    def all(self, waba_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(t) for t in self._catalogue(waba_id).values()]

    def page(self, waba_id: str, *, limit: int, after: str, url: str) -> dict[str, Any]:
        """A Graph page: `data`, `paging.cursors` and `paging.next` only when more follow."""
        if not 0 < limit <= PAGE_LIMIT_MAX:
            raise Refusal(100, f"Invalid parameter: limit must be 1..{PAGE_LIMIT_MAX}")
        start = _index(after) if after else 0
        with self._lock:
            # Meta lists newest first; a stable order is what matters for cursors.
            items = sorted(self._catalogue(waba_id).values(), key=lambda t: t["id"], reverse=True)
            data = [copy.deepcopy(t) for t in items[start : start + limit]]
            more = start + limit < len(items)
        page: dict[str, Any] = {"data": data}
        if data:
            page["paging"] = {
                "cursors": {"before": _cursor(start), "after": _cursor(start + len(data))}
            }
            if more:
                joiner = "&" if "?" in url else "?"
                after_next = _cursor(start + len(data))
                page["paging"]["next"] = f"{url}{joiner}limit={limit}&after={after_next}"
        return page

    def upsert(self, waba_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Add or change a template: {"name", "language", "status"?, "category"?, "body"?,
        "components"?, "rejected_reason"?}. Returns the stored entry."""
        name = values.get("name")
        language = values.get("language")
        if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
            raise ValueError("a template needs a name and a language")
        status = str(values.get("status", "APPROVED")).upper()
        if status not in STATUSES:
            raise ValueError(f"unknown template status {status!r}")
        with self._lock:
            catalogue = self._catalogue(waba_id)
            entry = catalogue.get((name, language))
            if entry is None:
                self._next_id += 1
                entry = _template(str(self._next_id), name, language, "")
                catalogue[(name, language)] = entry
            entry["status"] = status
            if "category" in values:
                entry["category"] = str(values["category"]).upper()
            if "components" in values:
                if not isinstance(values["components"], list):
                    raise ValueError("components must be a list")
                entry["components"] = values["components"]
            elif "body" in values:
                entry["components"] = [{"type": "BODY", "text": str(values["body"])}]
            if status == "REJECTED":
                entry["rejected_reason"] = str(values.get("rejected_reason") or "NONE")
            else:
                entry.pop("rejected_reason", None)
            return copy.deepcopy(entry)

    def remove(self, waba_id: str, name: str, language: str) -> bool:
        with self._lock:
            return self._catalogue(waba_id).pop((name, language), None) is not None


def template_status_event(
    *, waba_id: str, template: dict[str, Any], event: str, reason: str = "NONE"
) -> dict[str, Any]:
    """A Meta-shaped `message_template_status_update` webhook body."""
    value: dict[str, Any] = {
        "event": event,
        "message_template_id": int(template["id"]),
        "message_template_name": template["name"],
        "message_template_language": template["language"],
        "reason": reason,
        "message_template_category": template.get("category", ""),
    }
    if event == "REJECTED" and reason not in ("", "NONE"):
        value["rejection_info"] = {"reason": reason, "recommendation": ""}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "time": int(time.time()),
                "changes": [{"value": value, "field": "message_template_status_update"}],
            }
        ],
    }
