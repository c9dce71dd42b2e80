"""Tunables of the channel, read at call time (not import time) so tests and
`override_settings` see changes. Their defaults and env variables are in settings.py; the few
below have no settings line yet and fall back to the default here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Read receipts left unsent (a hard-killed worker holds the task until the broker's
    # visibility timeout) are re-sent by the sweeper past the grace, while still this recent:
    # a receipt much later than the message is of no use to the customer.
    "META_RECEIPT_SWEEP_MAX_AGE_SECONDS": 15 * 60,
    # Stored webhook events and unanswered inbound messages are re-published past this grace
    # (the sweep runs every 30 s): with Redis back after an outage, every message stranded by
    # a failed publish is answered within about 40 s.
    "META_SWEEP_INBOUND_GRACE_SECONDS": 10,
    # How long a bulk send may sleep for its slot of the bulk budget before it is retried
    # later instead (below the send task's soft time limit).
    "META_BULK_MAX_WAIT_SECONDS": 5.0,
}


def get(name: str) -> Any:
    if name in DEFAULTS:
        return getattr(settings, name, DEFAULTS[name])
    return getattr(settings, name)
