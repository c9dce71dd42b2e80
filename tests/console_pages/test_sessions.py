"""Sessions: time to expiry, expire now (flows' own service: the timeout message is queued),
expiries per hour as SVG bars, hand-overs apart, configured timeouts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from flows.models import ConversationSession, Flow, SessionStatus
from meta_integration.models import OutboundMessage
from tests.factories import make_contact
from whatsappcrm_backend.console import selectors_sessions

pytestmark = pytest.mark.django_db


@pytest.fixture
def sessions(contact):
    now = timezone.now()
    flow = Flow.objects.create(name="Support", idle_timeout_seconds=900)
    active = ConversationSession.objects.create(
        contact=contact, flow=flow, expires_at=now + timedelta(minutes=5)
    )
    other = make_contact("16505550002")
    handed = ConversationSession.objects.create(
        contact=other, flow=flow, status=SessionStatus.HANDED_OVER, expires_at=None
    )
    for hours_ago, count in ((0, 2), (3, 1), (30, 4)):  # the last is outside 24 h
        for n in range(count):
            c = make_contact(f"1650555{hours_ago:02d}{n:02d}")
            ConversationSession.objects.create(
                contact=c,
                flow=flow,
                status=SessionStatus.EXPIRED,
                ended_at=now - timedelta(hours=hours_ago, minutes=1 if hours_ago else 0),
            )
    return {"active": active, "handed": handed, "flow": flow}


@override_settings(SESSION_IDLE_TIMEOUT=300)
def test_page_shows_expiry_handovers_timeouts_and_chart(staff_client, sessions):
    response = staff_client.get(reverse("console:sessions"))
    assert response.status_code == 200
    ctx = response.context
    [row] = ctx["active"]["rows"]
    assert row["session"].pk == sessions["active"].pk
    assert 240 < row["expires_in"] <= 300
    assert [s.pk for s in ctx["handovers"]["rows"]] == [sessions["handed"].pk]
    assert ctx["timeouts"]["default_seconds"] == 300
    assert ctx["timeouts"]["per_flow"][0]["idle_timeout_seconds"] == 900
    assert ctx["expired_24h"] == 3
    assert b"<svg" in response.content and b"<rect" in response.content


def test_expired_per_hour_buckets():
    now = timezone.now()
    contact = make_contact("16505559999")
    ConversationSession.objects.create(
        contact=contact, status=SessionStatus.EXPIRED, ended_at=now - timedelta(hours=2)
    )
    series = selectors_sessions.expired_per_hour(now=now)
    assert len(series) == 24
    assert [p["count"] for p in series][-3] == 1
    assert sum(p["count"] for p in series) == 1
    chart = selectors_sessions.bar_chart(series)
    assert max(b["h"] for b in chart["bars"]) > 0


def test_expire_now(staff_client, staff_user, sessions):
    session = sessions["active"]
    response = staff_client.post(
        reverse("console:sessions_action"), {"id": session.pk, "action": "expire"}
    )
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == SessionStatus.EXPIRED
    assert session.ended_reason == "expired by operator operator"
    # flows' service queued the timeout message (the contact wrote within 24 h).
    assert OutboundMessage.objects.filter(idempotency_key=f"session-timeout:{session.pk}").exists()
    assert LogEntry.objects.get(user=staff_user).object_id == str(session.pk)
    # A second click finds it already ended: nothing more happens.
    staff_client.post(reverse("console:sessions_action"), {"id": session.pk, "action": "expire"})
    assert LogEntry.objects.count() == 1


def test_handed_over_sessions_are_not_expired_here(staff_client, sessions):
    staff_client.post(
        reverse("console:sessions_action"), {"id": sessions["handed"].pk, "action": "expire"}
    )
    sessions["handed"].refresh_from_db()
    assert sessions["handed"].status == SessionStatus.HANDED_OVER
