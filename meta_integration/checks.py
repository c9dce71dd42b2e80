"""System checks: a missing Meta secret is a startup error, never a silently skipped check."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

REQUIRED_SECRETS = {
    "META_APP_SECRET": ("E001", "webhook signatures (X-Hub-Signature-256) cannot be verified"),
    "META_VERIFY_TOKEN": ("E002", "the webhook subscription handshake cannot succeed"),
    "META_ACCESS_TOKEN": ("E003", "nothing can be sent through the Graph API"),
}


@register()
def meta_secrets_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    for name, (code, consequence) in REQUIRED_SECRETS.items():
        if not getattr(settings, name, ""):
            errors.append(
                Error(
                    f"{name} is empty: {consequence}.",
                    hint=f"Set {name} (or {name}_FILE), or SANDBOX=1 for local runs.",
                    id=f"meta_integration.{code}",
                )
            )
    return errors
