"""Demo betting data: every demo contact gets a funded wallet (sandbox only, idempotent).

Contacts who first write later (during `make run`) get theirs from the flow actions, which
create the wallet with the same sandbox welcome deposit (services.wallet.wallet_get_or_create).
Called from football_data_app/demo.py's `load_demo()` (run by `manage.py bootstrap_demo`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings

from football_data_app.services.wallet import wallet_get_or_create
from meta_integration.models import Contact


def load_demo() -> dict[str, Any]:
    if not settings.SANDBOX:
        return {"wallets_created": 0, "note": "SANDBOX is off: no demo money"}
    created = 0
    for contact in Contact.objects.filter(wallet__isnull=True).order_by("pk")[:1000]:
        wallet_get_or_create(contact=contact)
        created += 1
    return {
        "wallets_created": created,
        "welcome_deposit": str(Decimal(settings.FOOTBALL_SANDBOX_WELCOME_DEPOSIT)),
    }
