"""The per-contact lock of the flows app (a ContactState row) and the channel helpers it needs.

Why not lock the Contact row: every webhook POST upserts its senders' Contact rows, so a flow
transaction holding that row (while actions run) made webhook requests wait. The ContactState
row is written only by flows code, so the webhook never queues behind a flow. SQLite has no
row locks: it serialises writers at BEGIN IMMEDIATE, which is the same guarantee.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from flows.models import ContactState
from meta_integration.models import (
    Contact,
    ConversationWindow,
    InboundMessage,
    WhatsAppNumber,
)

# Meta refuses free-form messages more than 24 h after the customer's last message (131047).
CUSTOMER_WINDOW = timedelta(hours=24)
KEY_MAX = 255  # OutboundMessage.idempotency_key


def contact_state_lock(contact_id: int) -> ContactState | None:
    """Lock (SELECT .. FOR UPDATE) the contact's ContactState row, creating it the first time.

    Returns the row with its contact loaded (one query when the row exists), or None for a
    contact that does not exist. Call inside a transaction.
    """
    rows = ContactState.objects.select_for_update(of=("self",)).select_related("contact")
    state = rows.filter(pk=contact_id).first()
    if state is not None:
        return state
    # The contact's first conversation: check it exists first, because PostgreSQL checks the
    # (deferred) foreign key only at commit, too late to answer "no such contact".
    if not Contact.objects.filter(pk=contact_id).exists():
        return None
    ContactState.objects.bulk_create([ContactState(contact_id=contact_id)], ignore_conflicts=True)
    return rows.filter(pk=contact_id).first()


def reply_key(wamid: str, index: int) -> str:
    """The idempotency key of the index-th reply to an inbound message: "<wamid>:<index>".

    Meta's wamids are about 60 characters, but the column (and Meta's limit for ids) is 255: a
    longer key would overflow the column on PostgreSQL and fail the whole batch. Such wamids
    are hashed instead, which is just as unique and just as stable across redeliveries.
    """
    key = f"{wamid}:{index}"
    if len(key) <= KEY_MAX:
        return key
    return f"in-sha256:{hashlib.sha256(wamid.encode()).hexdigest()}:{index}"


def reply_number(contact: Contact) -> WhatsAppNumber | None:
    """The business number the customer last wrote to (a reply must leave from it)."""
    latest = (
        InboundMessage.objects.filter(contact_id=contact.pk, number__isnull=False)
        .select_related("number")
        .order_by("-id")
        .first()
    )
    return latest.number if latest is not None else contact.number


def window_open(*, contact: Contact, number: WhatsAppNumber | None, now: datetime) -> bool:
    """Whether a free-form message may go to the contact from `number` at `now` (Meta's rule).

    The window is per (business number, customer) pair (meta_integration's ConversationWindow,
    the same rule as meta_integration.selectors.window_open, which only knows the real clock;
    the idle sweep asks about its own `now`). A contact with no window row at all was stored
    before windows were per pair: its global last_inbound_at decides.
    """
    windows = dict(
        ConversationWindow.objects.filter(contact_id=contact.pk).values_list(
            "number_id", "last_inbound_at"
        )
    )
    if windows:
        since = windows.get(number.pk) if number is not None else None
    else:
        since = contact.last_inbound_at
    return since is not None and now - since <= CUSTOMER_WINDOW
