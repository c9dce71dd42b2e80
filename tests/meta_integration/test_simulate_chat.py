"""simulate_chat's pure parts: users, events, correlation of replies, percentiles, report."""

from __future__ import annotations

import io
import json
import random
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from meta_integration import envelopes, ingest, parsing, sending, services, simulation
from meta_integration.messages import text_message
from meta_integration.models import InboundMessage
from meta_integration.signatures import sign, verify
from tests.factories import make_number
from whatsappcrm_backend import publishing


def test_users_are_distinct_and_plausible():
    users = simulation.make_users(50, random.Random(1))
    assert len({u.wa_id for u in users}) == 50
    assert all(u.wa_id.isdigit() and len(u.wa_id) == 12 for u in users)
    assert all(u.user_id.startswith("US.") for u in users)
    assert simulation.make_users(3, random.Random(1)) == users[:3]  # repeatable with a seed


def test_plan_interleaves_users_keeping_each_users_order():
    rng = random.Random(2)
    users = simulation.make_users(3, rng)
    plan = simulation.plan_messages(users, 7, rng)
    assert [u for u, _ in plan] == users + users + users[:1]
    assert all(text for _, text in plan)


def test_the_event_is_a_real_shaped_signed_webhook_our_parser_reads():
    user = simulation.SimUser(wa_id="254700000001", user_id="US.1", name="Zoë")
    event = simulation.text_event(
        user=user,
        wamid="wamid.A",
        text="menu 😮",
        timestamp=1750000000,
        phone_number_id="106540352242922",
        display_phone_number="15550783881",
        waba_id="1",
    )
    body = envelopes.encode_event(event)
    assert body.isascii()  # escaped unicode, like Meta
    assert verify(body, sign(body, "s"), "s")
    batch = parsing.parse_event(json.loads(body))
    [message] = batch.messages
    assert (message.wamid, message.wa_id, message.text) == ("wamid.A", "254700000001", "menu 😮")
    assert batch.contacts["254700000001"].user_id == "US.1"


def test_wamids_are_unique():
    rng = random.Random(3)
    assert len({simulation.new_wamid(rng) for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 50, None),
        ([7.0], 99, 7.0),
        ([1, 2, 3, 4], 50, 2),
        ([1, 2, 3, 4], 95, 4),
        (list(range(1, 101)), 50, 50),
        (list(range(1, 101)), 95, 95),
        (list(range(1, 101)), 99, 99),
        ([5, 1, 4, 2, 3], 100, 5),
    ],
)
def test_percentile_nearest_rank(values, pct, expected):
    assert simulation.percentile(values, pct) == expected


def sandbox_message(key: str, received_at: float) -> dict:
    return {
        "to": "1",
        "type": "text",
        "wamid": "wamid.R",
        "received_at": received_at,
        "biz_opaque_callback_data": key,
        "payload": {},
    }


def test_correlation_counts_replied_missing_duplicated_and_latency():
    posted = {"wamid.A": 100.0, "wamid.B": 100.5, "wamid.C": 101.0}
    messages = [
        sandbox_message("wamid.A:0", 100.2),
        sandbox_message("wamid.A:1", 100.3),  # a second action of the same reply: fine
        sandbox_message("wamid.B:0", 100.6),
        sandbox_message("wamid.B:0", 100.9),  # sent twice: duplicated
        sandbox_message("wamid.OTHER:0", 100.1),  # someone else's traffic
        sandbox_message("", 100.1),
    ]
    report = simulation.correlate(posted, messages)
    assert (report.sent, report.replied) == (3, 2)
    assert report.missing == ["wamid.C"]
    assert report.duplicated == ["wamid.B:0"]
    assert sorted(report.latencies_ms) == [100.0, 200.0]  # first reply only
    assert not report.ok


def test_a_clean_run_is_ok_and_reports_percentiles():
    posted = {f"wamid.{i}": 0.0 for i in range(10)}
    messages = [sandbox_message(f"wamid.{i}:0", (i + 1) / 100) for i in range(10)]
    report = simulation.correlate(posted, messages)
    assert report.ok
    text = simulation.format_report(report)
    assert (
        "sent=10" in text
        and "replied=10" in text
        and "missing=0" in text
        and "duplicated=0" in text
    )
    assert "p50=50" in text and "p95=100" in text and "p99=100" in text


# --- the command, end to end over HTTP (a stand-in flow answers every message) -------------


@pytest.fixture
def eager_chain(monkeypatch):
    """Run published tasks at once, in-process; the flow is a stand-in replying "ok" once.

    (The real flow task lives in the flows app; this only proves the command's plumbing.)
    """

    def send_task(name, args=None, **options):
        if name == "ingest_webhook_event_task":
            ingest.webhook_event_ingest(event_id=args[0])
        elif name == "process_flow_for_message_task":
            pending = InboundMessage.objects.filter(contact_id=args[0], processed_at__isnull=True)
            for inbound in pending.select_related("contact"):
                services.outbound_message_create(
                    contact=inbound.contact,
                    idempotency_key=f"{inbound.wamid}:0",
                    message=text_message("ok"),
                    in_reply_to=inbound,
                )
                InboundMessage.objects.filter(pk=inbound.pk).update(processed_at=timezone.now())
        elif name == "send_whatsapp_message_task":
            # As the task would: retry while an earlier send to the contact is on its way.
            result = sending.outbound_send(outbound_id=args[0])
            while result.retry_in is not None:
                time.sleep(result.retry_in)
                result = sending.outbound_send(outbound_id=args[0])

    monkeypatch.setattr(publishing.app, "send_task", send_task)


@pytest.mark.django_db(transaction=True)
def test_the_command_reports_every_reply_once(live_server, sandbox, eager_chain, settings):
    make_number()
    settings.META_MESSAGES_PER_SECOND = 1000
    out = io.StringIO()
    call_command(
        "simulate_chat",
        users=4,
        messages=12,
        rate=40,
        duplicates=0.5,
        webhook_url=live_server.url + "/webhooks/whatsapp/",
        sandbox_url=sandbox.url,
        timeout=20,
        seed=5,
        stdout=out,
    )
    report = out.getvalue()
    assert "sent=12" in report and "replied=12" in report
    assert "missing=0 duplicated=0 webhook_errors=0" in report
    assert "p50=" in report and "p99=" in report
    assert InboundMessage.objects.count() == 12


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_when_replies_are_missing(live_server, sandbox, published):
    make_number()
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "simulate_chat",
            users=2,
            messages=2,
            rate=50,
            webhook_url=live_server.url + "/webhooks/whatsapp/",
            sandbox_url=sandbox.url,
            timeout=0.5,
            stdout=out,
            stderr=io.StringIO(),
        )
    assert exit_info.value.code == 1
    assert "sent=2" in out.getvalue() and "missing=2" in out.getvalue()
