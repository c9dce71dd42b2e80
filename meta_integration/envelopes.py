"""The webhook envelope Meta wraps every notification in, and its bytes on the wire.

Shared by everything that plays Meta's part: the sandbox's status callbacks, the chat
simulator and the tests. Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any


def webhook_envelope(
    *, waba_id: str, phone_number_id: str, display_phone_number: str, value: dict[str, Any]
) -> dict[str, Any]:
    """One entry with one `messages` change; `value` holds contacts and messages or statuses."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_phone_number,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def encode_event(event: dict[str, Any]) -> bytes:
    """Bytes as Meta sends them: compact, escaped unicode ("an escaped unicode version")."""
    return json.dumps(event, separators=(",", ":")).encode("ascii")
