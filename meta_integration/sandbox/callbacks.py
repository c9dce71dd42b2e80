"""The sandbox calling our webhook back with signed status notifications, as Meta does.

One status per POST (common clients read only the first entry, change and status), each
echoing the send's biz_opaque_callback_data, with value.contacts[0] wa_id + user_id,
conversation and pricing. Sent from a few daemon threads so a slow webhook never slows the
fake Graph API itself.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from meta_integration.envelopes import encode_event, webhook_envelope
from meta_integration.signatures import HEADER, sign

logger = logging.getLogger(__name__)


def user_id_for(wa_id: str) -> str:
    """A stable business-scoped user id for a wa_id (Meta's look like "US.1349...")."""
    return "US." + str(int(hashlib.sha256(wa_id.encode()).hexdigest()[:15], 16))


def status_event(
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    wamid: str,
    status: str,
    recipient: str,
    biz_opaque_callback_data: str = "",
    error_code: int | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """A Meta-shaped status webhook body for one status of one message."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(timestamp if timestamp is not None else time.time())),
        "recipient_id": recipient,
    }
    if status in ("sent", "delivered"):
        item["conversation"] = {
            "id": hashlib.md5(f"{phone_number_id}:{recipient}".encode()).hexdigest(),  # noqa: S324
            "origin": {"type": "service"},
        }
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    if status == "failed":
        item["errors"] = [
            {
                "code": error_code or 131026,
                "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "Message undeliverable (sandbox)"},
            }
        ]
    if biz_opaque_callback_data:
        item["biz_opaque_callback_data"] = biz_opaque_callback_data
    return webhook_envelope(
        waba_id=waba_id,
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        value={
            "contacts": [{"wa_id": recipient, "user_id": user_id_for(recipient)}],
            "statuses": [item],
        },
    )


@dataclass
class CallbackJob:
    url: str
    secret: str
    delay: float
    events: list[dict[str, Any]]


class CallbackDispatcher:
    """A queue of status sequences, delivered in order per message by daemon threads."""

    ATTEMPTS = 3

    def __init__(self, threads: int = 8) -> None:
        self._queue: queue.Queue[CallbackJob] = queue.Queue()
        self._threads = threads
        self._started = False
        self._lock = threading.Lock()
        # Cleared to hold every callback (tests use it to order events deterministically).
        self.flowing = threading.Event()
        self.flowing.set()
        self.delivered = 0
        self.failed = 0

    def submit(self, job: CallbackJob) -> None:
        with self._lock:
            if not self._started:
                for index in range(self._threads):
                    threading.Thread(
                        target=self._run, name=f"sandbox-callback-{index}", daemon=True
                    ).start()
                self._started = True
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job.delay > 0:
                time.sleep(job.delay)
            self.flowing.wait()
            for event in job.events:
                self._post(job.url, job.secret, event)

    def _post(self, url: str, secret: str, event: dict[str, Any]) -> None:
        body = encode_event(event)
        request = urllib.request.Request(  # noqa: S310 - the URL is our own configured webhook
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", HEADER: sign(body, secret)},
        )
        for attempt in range(self.ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    response.read()
                with self._lock:
                    self.delivered += 1
                return
            except (urllib.error.URLError, OSError) as exc:
                logger.info(
                    "sandbox status callback to %s failed (%s), attempt %s", url, exc, attempt
                )
                time.sleep(0.2 * (attempt + 1))
        with self._lock:
            self.failed += 1
