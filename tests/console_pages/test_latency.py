"""Message latency from prepared rows: percentiles, ingestion lag and its alarm, send rate per
number, slowest conversations; lookup by wamid and by customer with the diagnosis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from meta_integration.models import InboundMessage, OutboundMessage, OutboundStatus, WebhookEvent
from tests.console_pages.conftest import make_outbound
from tests.factories import make_inbound, new_wamid
from whatsappcrm_backend.console import selectors_latency, selectors_lookup

pytestmark = pytest.mark.django_db


def test_percentile_rule():
    values = list(range(1, 101))  # 1..100
    assert selectors_latency.percentile(values, 50) == 50.5
    assert selectors_latency.percentile(values, 95) == 95.05
    assert selectors_latency.percentile(values, 99) == 99.01
    assert selectors_latency.percentile([], 50) is None
    assert selectors_latency.percentile([7], 99) == 7


def reply(contact, n: int, *, received_ago_s: float, latency_ms: int, processed_ms: int = 50):
    """An inbound message received `received_ago_s` ago, answered `latency_ms` later."""
    now = timezone.now()
    inbound = make_inbound(contact, f"msg {n}")
    received = now - timedelta(seconds=received_ago_s)
    InboundMessage.objects.filter(pk=inbound.pk).update(
        sent_at=received - timedelta(seconds=1),
        received_at=received,
        processed_at=received + timedelta(milliseconds=processed_ms),
    )
    out = make_outbound(
        contact,
        f"r:{n}",
        in_reply_to=inbound,
        wamid=new_wamid(),
        status=OutboundStatus.DELIVERED,
    )
    OutboundMessage.objects.filter(pk=out.pk).update(
        queued_at=received + timedelta(milliseconds=processed_ms + 1),
        sending_at=received + timedelta(milliseconds=latency_ms - 10),
        sent_at=received + timedelta(milliseconds=latency_ms),
        delivered_at=received + timedelta(milliseconds=latency_ms + 500),
    )
    return inbound, out


def test_reply_latency_percentiles_from_prepared_rows(contact):
    for n in range(1, 101):
        reply(contact, n, received_ago_s=60, latency_ms=n * 10)  # 10 ms .. 1000 ms
    reply(contact, 999, received_ago_s=3600, latency_ms=99_999)  # outside the window
    data = selectors_latency.latency_overview(minutes=15)
    total = data["replies"]["total"]
    assert total["count"] == 100
    assert total["p50"] == pytest.approx(505, abs=1)
    assert total["p95"] == pytest.approx(950.5, abs=1)
    assert total["p99"] == pytest.approx(990.1, abs=1)
    slowest = data["slowest"]
    assert slowest[0]["total_ms"] == pytest.approx(1000, abs=1)
    labels = [e["label"] for e in slowest[0]["timeline"]]
    assert labels[1:] == [
        "webhook received",
        "flow processed",
        "send queued",
        "sending (claimed by a worker)",
        "sent (Graph API accepted)",
        "delivered",
    ]
    assert data["ingestion"]["lag"]["p50"] == pytest.approx(50, abs=1)


@override_settings(OPS_INGESTION_ALARM_SECONDS=60)
def test_ingestion_alarm_when_accepted_rows_are_not_processed(contact, staff_client):
    assert selectors_latency.latency_overview()["ingestion"]["alarm"] is None
    stuck = make_inbound(contact, "nobody reads me")
    InboundMessage.objects.filter(pk=stuck.pk).update(
        received_at=timezone.now() - timedelta(seconds=300)
    )
    data = selectors_latency.latency_overview()["ingestion"]
    assert data["pending"] == 1
    assert "nothing processed in the last 60 s" in data["alarm"]
    page = staff_client.get(reverse("console:latency"))
    assert b"ingestion-alarm" in page.content


@override_settings(META_MESSAGES_PER_SECOND=80)
def test_send_rate_per_number_and_throttle_codes(contact):
    now = timezone.now()
    for n in range(40):
        out = make_outbound(contact, f"s:{n}", wamid=new_wamid())
        OutboundMessage.objects.filter(pk=out.pk).update(sent_at=now - timedelta(seconds=n % 2))
    make_outbound(contact, "t:1", status=OutboundStatus.QUEUED, error_code=130429)
    make_outbound(contact, "t:2", status=OutboundStatus.QUEUED, error_code=131056)
    make_outbound(contact, "t:3", status=OutboundStatus.FAILED, error_code=131056)
    [row] = selectors_latency.send_rates(now=now, minutes=15)
    assert row["sent"] == 40
    assert row["peak_per_s"] == 20
    assert row["peak_pct"] == 25
    assert (row["c130429"], row["c131056"]) == (1, 2)


def test_lookup_by_inbound_wamid_with_status_history(staff_client, contact):
    inbound, out = reply(contact, 1, received_ago_s=30, latency_ms=200)
    WebhookEvent.objects.create(body=f'{{"statuses":[{{"id":"{out.wamid}"}}]}}')
    WebhookEvent.objects.create(body=f'{{"messages":[{{"id":"{inbound.wamid}"}}]}}')
    response = staff_client.get(reverse("console:lookup"), {"q": inbound.wamid})
    result = response.context["result"]
    assert result["kind"] == "inbound"
    assert len(result["events"]) == 1
    [r] = result["replies"]
    assert [e["label"] for e in r["timeline"]][-1] == "delivered"
    assert result["diagnosis"] == ["Nothing wrong found: every step completed in time."]
    out_page = staff_client.get(reverse("console:lookup"), {"q": out.wamid})
    assert out_page.context["result"]["kind"] == "outbound"
    assert b"status-history" in out_page.content
    assert len(out_page.context["result"]["events"]) == 1


def test_lookup_by_customer_explains_a_missing_reply(staff_client, contact):
    inbound = make_inbound(contact, "where is my ticket?")
    failed = make_outbound(
        contact,
        "f:1",
        in_reply_to=inbound,
        status=OutboundStatus.FAILED,
        error_code=131026,
        error_details="undeliverable",
    )
    response = staff_client.get(reverse("console:lookup"), {"q": "+" + contact.wa_id})
    result = response.context["result"]
    assert result["kind"] == "contact"
    [message] = result["messages"]
    text = " ".join(message["diagnosis"])
    assert "Not processed yet" in text
    assert f"Reply {failed.pk} failed (code 131026)" in text


def test_diagnosis_of_a_slow_send_and_a_handover(contact):
    now = timezone.now()
    inbound = make_inbound(contact, "hi")
    inbound.received_at = now - timedelta(seconds=20)
    inbound.processed_at = inbound.received_at + timedelta(milliseconds=100)
    slow = OutboundMessage(
        pk=5,
        status=OutboundStatus.SENT,
        queued_at=inbound.processed_at,
        sent_at=inbound.processed_at + timedelta(seconds=12),
        attempts=3,
        error_code=130429,
        next_attempt_at=now,
    )
    lines = selectors_lookup.diagnose(inbound=inbound, replies=[slow], contact=contact, now=now)
    assert any(
        "waited 12.0 s between queued and sent" in line and "130429" in line for line in lines
    )
    contact.needs_human = True
    lines = selectors_lookup.diagnose(inbound=inbound, replies=[], contact=contact, now=now)
    assert lines == ["No reply by design: the contact is handed over to a human."]


def test_lookup_of_nothing(staff_client):
    response = staff_client.get(reverse("console:lookup"), {"q": "wamid.unknown"})
    assert response.context["result"]["kind"] == "none"
    assert b"not-found" in response.content
