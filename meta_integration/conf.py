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
}


def get(name: str) -> Any:
    if name in DEFAULTS:
        return getattr(settings, name, DEFAULTS[name])
    return getattr(settings, name)
