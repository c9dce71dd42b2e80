"""Status webhooks move an outbound row forward only; Meta's echo completes an unrecorded send."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from meta_integration import ingest, services
from meta_integration.models import OutboundMessage, OutboundStatus
from meta_integration.parsing import ParsedStatus
from tests.factories import new_wamid
from tests.meta_integration.conftest import load_fixture

pytestmark = pytest.mark.django_db

RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


@pytest.fixture
def post_webhook(post_webhook, published, django_capture_on_commit_callbacks):
    """POST (conftest's post_webhook), then run the ingest task it published, as a worker
    would; the record then shows what the ingest published."""

    def post(*args, **kwargs):
        response = post_webhook(*args, **kwargs)
        event_ids = [args[0] for args, _ in published.of("ingest_webhook_event_task")]
        published.calls.clear()
        for event_id in event_ids:
            with django_capture_on_commit_callbacks(execute=True):
                ingest.webhook_event_ingest(event_id=event_id)
        return response

    return post


def at(second: int) -> datetime:
    return datetime.fromtimestamp(1_750_000_000 + second, tz=UTC)


def make_outbound(contact, *, status=OutboundStatus.SENT, wamid: str | None = "auto", key=None):
    return OutboundMessage.objects.create(
        contact=contact,
        number=contact.number,
        idempotency_key=key or new_wamid() + ":0",
        message_type="text",
        payload={"type": "text", "text": {"body": "hi"}},
        status=status,
        wamid=new_wamid() if wamid == "auto" else wamid,
    )


def status(row_or_wamid, value: str, second: int = 0, **extra) -> ParsedStatus:
    wamid = row_or_wamid if isinstance(row_or_wamid, str) else row_or_wamid.wamid
    return ParsedStatus(wamid=wamid, status=value, timestamp=at(second), **extra)


@pytest.mark.parametrize("order", list(itertools.permutations(["sent", "delivered", "read"])))
def test_any_arrival_order_ends_read_with_every_time_recorded(contact, order):
    row = make_outbound(contact, status=OutboundStatus.SENDING)
    seconds = {"sent": 1, "delivered": 2, "read": 3}
    seen_rank = 0
    for value in order:
        services.outbound_status_apply(status=status(row, value, seconds[value]))
        row.refresh_from_db()
        assert RANK[row.status] >= seen_rank  # never backwards
        seen_rank = RANK[row.status]
    assert row.status == OutboundStatus.READ
    assert (row.sent_at, row.delivered_at, row.read_at) == (at(1), at(2), at(3))


def test_read_may_arrive_without_delivered(contact):
    row = make_outbound(contact)
    assert services.outbound_status_apply(status=status(row, "read", 5)) == "applied"
    row.refresh_from_db()
    assert row.status == OutboundStatus.READ
    assert row.delivered_at is None


def test_a_late_delivered_after_read_is_stale_but_its_time_is_kept(contact):
    row = make_outbound(contact)
    services.outbound_status_apply(status=status(row, "read", 5))
    assert services.outbound_status_apply(status=status(row, "delivered", 4)) == "stale"
    row.refresh_from_db()
    assert row.status == OutboundStatus.READ
    assert row.delivered_at == at(4)


@pytest.mark.parametrize("later", ["sent", "delivered", "read"])
def test_failed_is_terminal(contact, later):
    row = make_outbound(contact)
    failed = status(row, "failed", 2, error_code=131026, error_details="undeliverable")
    assert services.outbound_status_apply(status=failed) == "applied"
    assert services.outbound_status_apply(status=status(row, later, 3)) == "stale"
    row.refresh_from_db()
    assert row.status == OutboundStatus.FAILED
    assert (row.error_code, row.error_details) == (131026, "undeliverable")
    assert row.failed_at == at(2)


def test_a_read_message_does_not_fail_any_more(contact):
    row = make_outbound(contact)
    services.outbound_status_apply(status=status(row, "read", 2))
    assert services.outbound_status_apply(status=status(row, "failed", 3, error_code=1)) == "stale"
    row.refresh_from_db()
    assert row.status == OutboundStatus.READ and row.error_code is None


def test_an_unknown_wamid_without_callback_data_is_ignored(contact):
    assert services.outbound_status_apply(status=status(new_wamid(), "delivered")) == "unknown"


@pytest.mark.parametrize("row_status", [OutboundStatus.SENDING, OutboundStatus.QUEUED])
@pytest.mark.parametrize("echo", ["sent", "delivered", "read"])
def test_the_echo_completes_a_row_still_sending_or_queued(contact, row_status, echo):
    # The worker died (or timed out) after Meta accepted the send and before storing the wamid.
    row = make_outbound(contact, status=row_status, wamid=None, key="wamid.IN:0")
    wamid = new_wamid()
    result = services.outbound_status_apply(
        status=status(wamid, echo, 7, biz_opaque_callback_data="wamid.IN:0")
    )
    assert result == "completed"
    row.refresh_from_db()
    assert row.wamid == wamid
    assert row.status == echo
    assert row.sent_at == at(7)


def test_the_echo_of_a_failure_completes_the_row_as_failed(contact):
    row = make_outbound(contact, status=OutboundStatus.SENDING, wamid=None, key="wamid.IN:1")
    services.outbound_status_apply(
        status=status(
            new_wamid(), "failed", 3, biz_opaque_callback_data="wamid.IN:1", error_code=131047
        )
    )
    row.refresh_from_db()
    assert (row.status, row.error_code) == (OutboundStatus.FAILED, 131047)


def test_after_completion_later_statuses_apply_by_wamid(contact):
    row = make_outbound(contact, status=OutboundStatus.SENDING, wamid=None, key="k:0")
    wamid = new_wamid()
    services.outbound_status_apply(status=status(wamid, "sent", 1, biz_opaque_callback_data="k:0"))
    services.outbound_status_apply(status=status(wamid, "read", 2, biz_opaque_callback_data="k:0"))
    row.refresh_from_db()
    assert row.status == OutboundStatus.READ


def test_a_sent_row_without_a_wamid_learns_it_from_the_echo(contact):
    # A 2xx whose body we could not read: sent, but no wamid.
    row = make_outbound(contact, status=OutboundStatus.SENT, wamid=None, key="k:0")
    wamid = new_wamid()
    services.outbound_status_apply(
        status=status(wamid, "delivered", 4, biz_opaque_callback_data="k:0")
    )
    row.refresh_from_db()
    assert (row.wamid, row.status) == (wamid, OutboundStatus.DELIVERED)


def test_a_second_wamid_for_the_same_key_flags_a_duplicate(contact):
    row = make_outbound(contact, status=OutboundStatus.SENT, key="k:0")
    result = services.outbound_status_apply(
        status=status(new_wamid(), "sent", 1, biz_opaque_callback_data="k:0")
    )
    assert result == "duplicate"
    row.refresh_from_db()
    assert row.possible_duplicate is True
    assert row.status == OutboundStatus.SENT


def test_statuses_arrive_through_the_webhook(post_webhook, contact, published):
    row = make_outbound(contact)
    for kind in ("read", "delivered", "sent"):
        event = load_fixture(f"status__{kind}")
        event["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = row.wamid
        assert post_webhook(event).status_code == 200
    row.refresh_from_db()
    assert row.status == OutboundStatus.READ
    assert published.calls == []


def test_a_failed_status_through_the_webhook_stores_code_and_message(
    post_webhook, contact, published
):
    row = make_outbound(contact)
    event = load_fixture("status__failed")
    event["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = row.wamid
    post_webhook(event)
    row.refresh_from_db()
    assert row.status == OutboundStatus.FAILED
    assert row.error_code == 130472
    assert row.error_details.startswith("User's number is part of an experiment")


def test_the_echo_through_the_webhook(post_webhook, contact, published):
    row = make_outbound(contact, status=OutboundStatus.SENDING, wamid=None, key="KEY")
    assert post_webhook(load_fixture("status__sent_with_callback_data")).status_code == 200
    row.refresh_from_db()
    assert (row.status, row.wamid) == (OutboundStatus.SENT, "wamid.STATUS")
