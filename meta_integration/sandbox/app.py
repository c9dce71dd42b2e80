"""The fake Graph API as a plain WSGI application (no Django ORM), with its test controls.

Graph API:
  POST /v<major>.<minor>/<phone_number_id>/messages    send, or mark as read
  GET  /v<major>.<minor>/<waba_id>/message_templates   the template catalogue (paged: limit,
                                                      after; fields)
Controls:
  GET    /sandbox/meta/sent?to=<wa_id>&since=<epoch>  messages accepted so far
  GET    /sandbox/meta/reads                          mark-as-read calls accepted so far
  GET    /sandbox/meta/stats                          counters
  POST   /sandbox/meta/faults  {"error_rate", "error_codes", "latency_ms", "seed"?,
                                "failed_status_rate"?, "failed_status_code"?}
  DELETE /sandbox/meta/faults
  POST   /sandbox/meta/config  any SandboxConfig field (e.g. {"status_callbacks": false})
  POST   /sandbox/meta/callbacks {"paused": true|false}  hold status callbacks, or let them go
  POST   /sandbox/meta/reset   forget recorded messages, reads and rate-limit state
  GET    /sandbox/meta/templates?waba_id=            the catalogue of a WABA (default: ours)
  POST   /sandbox/meta/templates {"name", "language", "status"?, "category"?, "body"?,
                                  "components"?, "rejected_reason"?, "waba_id"?,
                                  "webhook"?: true, "event"?, "reason"?}
         add or change a template; with "webhook" the sandbox also POSTs a signed
         message_template_status_update to webhook_url, as Meta does
  DELETE /sandbox/meta/templates  back to the seeded catalogue
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from meta_integration.sandbox.callbacks import CallbackDispatcher, CallbackJob, status_event
from meta_integration.sandbox.errors import ERRORS, error_body  # noqa: F401 - ERRORS re-exported
from meta_integration.sandbox.template_api import TemplateEndpoints
from meta_integration.sandbox.templates import TemplateCatalogue
from meta_integration.sandbox.validation import Refusal, validate_mark_read, validate_send
from whatsappcrm_backend.sandbox_server import UpdatableConfig, django_setting

logger = logging.getLogger(__name__)

MESSAGES_PATH = re.compile(r"^/v(\d+)\.(\d+)/([A-Za-z0-9_-]{1,64})/messages/?$")
TEMPLATES_PATH = re.compile(r"^/v(\d+)\.(\d+)/([A-Za-z0-9_-]{1,64})/message_templates/?$")
MAX_BODY = 1024 * 1024


@dataclass
class SandboxConfig(UpdatableConfig):
    access_tokens: list[str] = field(default_factory=list)  # empty: any bearer token
    app_secret: str = ""
    webhook_url: str = ""
    waba_id: str = "102290129340398"
    display_phone_number: str = "15550783881"
    status_callbacks: bool = True
    callback_delay_ms: int = 50
    callback_statuses: list[str] = field(default_factory=lambda: ["sent", "delivered", "read"])
    pair_burst: int = 45  # Meta allows bursts of ~45 in 6 s to one user, borrowing from later
    pair_per_second: float = 1 / 6
    throughput_mps: int = 80  # Meta's default per-number throughput
    strict_encoding: bool = False  # refuse non-compact or \\u-escaped bodies (catches clients)
    # name -> body parameter count, any language (overrides the catalogue when set).
    templates: dict[str, int] | None = None
    # Check template sends against the catalogue (132001/132000/132015/132016), as Meta does.
    enforce_templates: bool = True
    # phone_number_id -> WABA id of numbers outside `waba_id` (whose catalogue a send uses).
    phone_wabas: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, **overrides: Any) -> SandboxConfig:
        token = django_setting("META_ACCESS_TOKEN", "")
        config = cls(
            access_tokens=[token] if token else [],
            app_secret=django_setting("META_APP_SECRET", ""),
            webhook_url=django_setting("META_SANDBOX_WEBHOOK_URL", ""),
            waba_id=django_setting("META_WABA_ID", "") or cls.waba_id,
            display_phone_number=django_setting("META_DISPLAY_PHONE_NUMBER", "")
            or cls.display_phone_number,
            status_callbacks=bool(django_setting("META_SANDBOX_STATUS_CALLBACKS", True)),
            pair_burst=int(django_setting("META_SANDBOX_PAIR_BURST", cls.pair_burst)),
        )
        config.update(overrides)
        return config


@dataclass
class Faults:
    error_rate: float = 0.0
    error_codes: list[int] = field(default_factory=lambda: [500])
    latency_ms: int = 0
    failed_status_rate: float = 0.0
    failed_status_code: int = 131026


def new_wamid() -> str:
    return "wamid." + base64.b64encode(b"\x15\x02\x00\x11\x18\x12" + os.urandom(18)).decode()


class GraphSandbox(TemplateEndpoints):
    """WSGI app; all state behind one lock, safe under a threading server."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig.from_settings()
        self.faults = Faults()
        self.rng = random.Random()
        self.callbacks = CallbackDispatcher()
        self.catalogue = TemplateCatalogue()
        self._lock = threading.Lock()
        self.sent: list[dict[str, Any]] = []
        self.reads: list[dict[str, Any]] = []
        self.counters = {"requests": 0, "accepted": 0, "refused": 0, "faults": 0}
        self._pairs: dict[tuple[str, str], tuple[float, float]] = {}
        self._throughput: dict[str, deque[float]] = {}

    # --- state ----------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.reads.clear()
            self._pairs.clear()
            self._throughput.clear()
            self.counters = dict.fromkeys(self.counters, 0)

    def set_faults(self, values: dict[str, Any]) -> None:
        with self._lock:
            seed = values.pop("seed", None)
            faults = Faults(**values)
            faults.error_codes = [int(code) for code in faults.error_codes] or [500]
            self.faults = faults
            if seed is not None:
                self.rng.seed(seed)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = Faults()

    def pause_callbacks(self, paused: bool = True) -> None:
        """Hold status callbacks (queued, not lost) until called with paused=False."""
        if paused:
            self.callbacks.flowing.clear()
        else:
            self.callbacks.flowing.set()

    def sent_messages(self, to: str | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(m)
                for m in self.sent
                if (to is None or m["to"] == to) and m["received_at"] >= since
            ]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.counters,
                "sent": len(self.sent),
                "reads": len(self.reads),
                "callbacks_delivered": self.callbacks.delivered,
                "callbacks_failed": self.callbacks.failed,
            }

    # --- limits -----------------------------------------------------------------------------

    def _over_throughput(self, phone_number_id: str, now: float) -> bool:
        window = self._throughput.setdefault(phone_number_id, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.config.throughput_mps:
            return True
        window.append(now)
        return False

    def _over_pair_limit(self, phone_number_id: str, to: str, now: float) -> bool:
        # A token bucket per (business number, user): ~1 per 6 s, with a generous burst.
        burst = float(self.config.pair_burst)
        tokens, last = self._pairs.get((phone_number_id, to), (burst, now))
        tokens = min(burst, tokens + (now - last) * self.config.pair_per_second)
        if tokens < 1.0:
            self._pairs[(phone_number_id, to)] = (tokens, now)
            return True
        self._pairs[(phone_number_id, to)] = (tokens - 1.0, now)
        return False

    # --- Graph API ----------------------------------------------------------------------------

    def _authorized(self, environ: dict[str, Any]) -> bool:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return False
        return not self.config.access_tokens or header[7:].strip() in self.config.access_tokens

    def _decode(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Refusal(100, "Invalid parameter: the body is not JSON") from exc
        if not isinstance(body, dict):
            raise Refusal(100, "Invalid parameter: the body is not a JSON object")
        if self.config.strict_encoding:
            compact = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if compact != raw:
                raise Refusal(100, "Invalid parameter: expected compact UTF-8 JSON (sandbox)")
        if body.get("messaging_product") != "whatsapp":
            raise Refusal(100, "Invalid parameter: messaging_product must be whatsapp")
        return body

    def messages(
        self, phone_number_id: str, environ: dict[str, Any], raw: bytes
    ) -> tuple[int, Any]:
        now = time.time()
        with self._lock:
            self.counters["requests"] += 1
            faults = self.faults
            fault_code = None
            if faults.error_rate and self.rng.random() < faults.error_rate:
                fault_code = self.rng.choice(faults.error_codes)
                self.counters["faults"] += 1
            failed_status = bool(
                faults.failed_status_rate and self.rng.random() < faults.failed_status_rate
            )
        latency = faults.latency_ms / 1000.0
        if not self._authorized(environ):
            return self._refuse(*error_body(190, "Invalid OAuth 2.0 Access Token"))
        if fault_code is not None:
            time.sleep(latency)  # a slow failure: the request hangs, then fails, unrecorded
            if fault_code == 500:
                code = self.rng.choice([1, 2])
                return self._refuse(*error_body(code, "Injected server error", http_status=500))
            return self._refuse(*error_body(fault_code, "Injected fault"))
        try:
            body = self._decode(raw)
            if "status" in body:
                return self._mark_read(phone_number_id, body, now, latency)
            validate_send(body, self.config.templates)
            if body.get("type") == "template":
                self._check_template(phone_number_id, body["template"])
        except Refusal as refusal:
            return self._refuse(*error_body(refusal.code, refusal.details))
        to = body["to"].lstrip("+")
        with self._lock:
            # Throughput counts messages (not read receipts); the pair limit one user's share.
            over_throughput = self._over_throughput(phone_number_id, now)
            over_pair = not over_throughput and self._over_pair_limit(phone_number_id, to, now)
        if over_throughput:
            return self._refuse(*error_body(130429, "Throughput limit of this phone number hit"))
        if over_pair:
            return self._refuse(*error_body(131056, "Message failed to send: pair rate limit"))
        wamid = new_wamid()
        biz = body.get("biz_opaque_callback_data", "")
        record = {
            "to": to,
            "type": body.get("type", "text"),
            "payload": body,
            "wamid": wamid,
            "received_at": now,
            "biz_opaque_callback_data": biz,
            "phone_number_id": phone_number_id,
        }
        with self._lock:
            self.sent.append(record)
            self.counters["accepted"] += 1
        self._schedule_statuses(phone_number_id, to, wamid, biz, failed_status)
        # Recorded, then slow to answer: the window in which a worker can die after Meta has
        # accepted a message (what biz_opaque_callback_data closes).
        if latency:
            time.sleep(latency)
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": to}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }

    def _mark_read(
        self, phone_number_id: str, body: dict[str, Any], now: float, latency: float
    ) -> tuple[int, Any]:
        message_id = validate_mark_read(body)
        with self._lock:
            self.reads.append(
                {"message_id": message_id, "received_at": now, "phone_number_id": phone_number_id}
            )
            self.counters["accepted"] += 1
        if latency:
            time.sleep(latency)
        return 200, {"success": True}

    def _refuse(self, status: int, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            self.counters["refused"] += 1
        return status, body

    def _schedule_statuses(
        self, phone_number_id: str, to: str, wamid: str, biz: str, failed: bool
    ) -> None:
        config = self.config
        if not config.status_callbacks or not config.webhook_url or not config.app_secret:
            return
        statuses: Iterable[str] = ["sent", "failed"] if failed else config.callback_statuses
        events = [
            status_event(
                waba_id=config.waba_id,
                phone_number_id=phone_number_id,
                display_phone_number=config.display_phone_number,
                wamid=wamid,
                status=status,
                recipient=to,
                biz_opaque_callback_data=biz,
                error_code=self.faults.failed_status_code if status == "failed" else None,
            )
            for status in statuses
        ]
        self.callbacks.submit(
            CallbackJob(
                url=config.webhook_url,
                secret=config.app_secret,
                delay=config.callback_delay_ms / 1000.0,
                events=events,
            )
        )

    # --- WSGI ---------------------------------------------------------------------------------

    def _controls(
        self, method: str, path: str, environ: dict[str, Any], raw: bytes
    ) -> tuple[int, Any]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        action = path.removeprefix("/sandbox/meta/").strip("/")
        try:
            data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError):
            return 400, {"error": "body is not JSON"}
        if not isinstance(data, dict):
            return 400, {"error": "body must be a JSON object"}
        try:
            if (method, action) == ("GET", "sent"):
                to = query.get("to", [None])[0]
                since = float(query.get("since", ["0"])[0] or 0)
                return 200, {"messages": self.sent_messages(to, since)}
            if (method, action) == ("GET", "reads"):
                with self._lock:
                    return 200, {"reads": list(self.reads)}
            if (method, action) == ("GET", "stats"):
                return 200, self.stats()
            if (method, action) == ("GET", "faults"):
                return 200, vars(self.faults)
            if (method, action) == ("POST", "faults"):
                self.set_faults(data)
                return 200, vars(self.faults)
            if (method, action) == ("DELETE", "faults"):
                self.clear_faults()
                return 200, vars(self.faults)
            if (method, action) == ("POST", "config"):
                self.config.update(data)
                return 200, {"ok": True}
            if (method, action) == ("POST", "callbacks"):
                self.pause_callbacks(bool(data.get("paused")))
                return 200, {"paused": not self.callbacks.flowing.is_set()}
            if (method, action) == ("POST", "reset"):
                self.reset()
                return 200, {"ok": True}
            if action == "templates":
                return self.template_controls(method, query, data)
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"no control {method} {action}"}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            status, body = error_body(100, "Request body too large")
        else:
            raw = environ["wsgi.input"].read(length) if length > 0 else b""
            match = MESSAGES_PATH.match(path)
            templates_match = TEMPLATES_PATH.match(path)
            if match and method == "POST":
                status, body = self.messages(match.group(3), environ, raw)
            elif templates_match and method == "GET":
                status, body = self.message_templates(templates_match.group(3), environ, path)
            elif path.startswith("/sandbox/meta/"):
                status, body = self._controls(method, path, environ, raw)
            else:
                status, body = error_body(100, f"Unsupported {method} request: {path}")
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]
