"""Failed work: grouped by error code, replay one and in bulk (rows re-queued, send tasks on the
broker, the admin log written), possible duplicates counted, parked inbound messages."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from meta_integration.models import OutboundMessage, OutboundStatus
from tests.console_pages.conftest import make_outbound, message_body
from tests.factories import make_inbound
from whatsappcrm_backend.console import selectors_failed, services_failed

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed(contact):
    rows = {
        "undeliverable": [
            make_outbound(
                contact,
                f"u:{n}",
                status=OutboundStatus.FAILED,
                error_code=131026,
                error_details="undeliverable",
                failed_at=timezone.now(),
            )
            for n in range(3)
        ],
        "gave_up": make_outbound(
            contact,
            "g:1",
            status=OutboundStatus.FAILED,
            error_code=130429,
            error_details="gave up after 9 attempts: throughput",
            attempts=9,
            possible_duplicate=True,
            failed_at=timezone.now(),
        ),
        "no_code": make_outbound(
            contact, "n:1", status=OutboundStatus.FAILED, error_details="contact is blocked"
        ),
        "sent_dup": make_outbound(contact, "d:1", possible_duplicate=True),
    }
    return rows


def test_groups_by_error_code_with_counts(failed):
    groups = {g["error_code"]: g for g in selectors_failed.failed_send_groups()}
    assert groups[131026]["count"] == 3
    assert groups[130429]["gave_up"] == 1 and groups[130429]["duplicates"] == 1
    assert groups[None]["count"] == 1
    assert groups[None]["code_param"] == "none"
    dup = selectors_failed.possible_duplicates()
    assert dup["total"] == 2
    assert dup["by_status"] == {"failed": 1, "sent": 1}


def test_page_lists_groups_and_filters_by_code(staff_client, failed):
    response = staff_client.get(reverse("console:failed"), {"code": "131026"})
    assert response.status_code == 200
    assert len(response.context["sends"]["rows"]) == 3
    assert b"ran out of retries" in staff_client.get(reverse("console:failed")).content


def test_replay_one_requeues_logs_and_publishes(
    staff_client, staff_user, failed, broker, django_capture_on_commit_callbacks
):
    row = failed["undeliverable"][0]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("console:failed_action"),
            {"kind": "send", "one": row.pk, "ids": [failed["undeliverable"][1].pk]},
        )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.status == OutboundStatus.QUEUED
    assert OutboundMessage.objects.get(pk=failed["undeliverable"][1].pk).status == "failed"
    [message] = broker.lists()["celery"]
    assert message["headers"]["task"] == "send_whatsapp_message_task"
    assert message_body(message)[0] == [row.pk]
    [entry] = LogEntry.objects.filter(user=staff_user)
    assert entry.object_id == str(row.pk)
    assert "Replay" in entry.change_message


def test_bulk_replay_of_a_code_group(
    staff_client, staff_user, failed, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("console:failed_action"), {"kind": "send", "group": "131026"})
    statuses = {r.pk: r.status for r in OutboundMessage.objects.filter(error_code__isnull=True)}
    ids = [r.pk for r in failed["undeliverable"]]
    assert all(statuses.get(pk) == OutboundStatus.QUEUED for pk in ids)
    assert OutboundMessage.objects.get(pk=failed["gave_up"].pk).status == "failed"
    assert len(broker.lists()["celery"]) == 3
    assert LogEntry.objects.filter(user=staff_user).count() == 3


def test_replay_of_a_sent_row_changes_nothing(staff_user, failed):
    summary = services_failed.sends_replay(ids=[failed["sent_dup"].pk], user_id=staff_user.pk)
    assert failed["sent_dup"].__class__.objects.get(pk=failed["sent_dup"].pk).status == "sent"
    assert summary.startswith("0 re-queued")  # the service's own answer, shown


def test_parked_inbound_listed_and_replayed(
    staff_client, staff_user, contact, broker, django_capture_on_commit_callbacks
):
    parked = make_inbound(
        contact,
        "boom",
        parked_at=timezone.now(),
        processing_attempts=3,
        processing_error="KeyError: 'x'\nTraceback...",
    )
    page = staff_client.get(reverse("console:failed"))
    assert [r.pk for r in page.context["parked"]["rows"]] == [parked.pk]
    assert page.context["parked"]["groups"] == [("KeyError: 'x'", 1)]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("console:failed_action"), {"kind": "inbound", "one": parked.pk}, follow=True
        )
    assert "1 re-queued" in response.content.decode()
    parked.refresh_from_db()
    assert parked.parked_at is None and parked.processing_attempts == 0
    # flows' replay runs the contact's flow again: its task is on the broker.
    [message] = broker.lists()["celery"]
    assert message["headers"]["task"] == "process_flow_for_message_task"
    assert message_body(message)[0] == [contact.pk]
    assert LogEntry.objects.filter(
        user=staff_user, object_id=str(parked.pk), change_message__contains="parked message"
    ).exists()


def test_inbound_replay_missing_is_reported(staff_client, contact, monkeypatch):
    parked = make_inbound(contact, "boom", parked_at=timezone.now())
    monkeypatch.setattr(services_failed, "INBOUND_REPLAY_MODULES", ("no.such.module",))
    response = staff_client.post(
        reverse("console:failed_action"), {"kind": "inbound", "one": parked.pk}, follow=True
    )
    assert "inbound_replay" in response.content.decode()
    assert not LogEntry.objects.exists()


def test_replay_refuses_a_send_meta_acknowledged(staff_client, contact, broker):
    acknowledged = make_outbound(
        contact,
        "ack:1",
        status=OutboundStatus.FAILED,
        wamid="wamid.ACK",
        error_code=131026,
        sent_at=timezone.now(),
    )
    response = staff_client.post(
        reverse("console:failed_action"), {"kind": "send", "one": acknowledged.pk}, follow=True
    )
    text = response.content.decode()
    assert "0 re-queued" in text and "Meta acknowledged" in text
    assert OutboundMessage.objects.get(pk=acknowledged.pk).status == OutboundStatus.FAILED
    assert broker.messages() == []
