"""Tunables of the channel, read at call time (not import time) so tests and
`override_settings` see changes. Their defaults and env variables are in settings.py.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def get(name: str) -> Any:
    return getattr(settings, name)
