"""Log in through the admin's form, open every console page linked from the admin index, run a
retry on a task result and a replay on a failed send, and keep screenshots of each page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from meta_integration.models import OutboundMessage, OutboundStatus
from tests.console_pages.conftest import Broker, make_outbound, message_body, store_result
from tests.factories import make_contact, make_inbound
from whatsappcrm_backend.schedules import install_schedules

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "console-pass-9876"


@pytest.fixture
def prepared(transactional_db, redis_conn):
    get_user_model().objects.create_user(
        "ops", "ops@example.com", PASSWORD, is_staff=True, is_superuser=True
    )
    install_schedules()
    contact = make_contact()
    inbound = make_inbound(contact, "hello")
    make_outbound(contact, "ok:1", in_reply_to=inbound, sent_at=timezone.now())
    failed = make_outbound(
        contact,
        "bad:1",
        status=OutboundStatus.FAILED,
        error_code=131026,
        error_details="undeliverable",
        failed_at=timezone.now(),
    )
    result = store_result("send_whatsapp_message_task", [failed.pk])
    broker = Broker()
    broker.clear()
    yield {"failed": failed, "result": result, "broker": broker}
    broker.clear()


def login(page, base: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def shot(page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"console-{name}.png"), full_page=True)


def test_every_console_page_and_the_actions(page, live_server, prepared, artifacts):
    base = live_server.url
    login(page, base)
    shot(page, artifacts, "admin-index")
    links = page.eval_on_selector_all("#ops-console a", "els => els.map(e => e.href)")
    paths = sorted({link.removeprefix(base) for link in links})
    # At least this helper's pages are linked; the queue pages too when they exist.
    for expected in (
        "/ops/tasks/",
        "/ops/failed/",
        "/ops/schedules/",
        "/ops/sessions/",
        "/ops/latency/",
        "/ops/lookup/",
    ):
        assert expected in paths
    for path in paths:
        response = page.goto(base + path)
        assert response is not None
        # The readiness probe answers 503 while no worker or beat runs (none does here).
        assert response.status == 200 or (path == "/ops/ready" and response.status == 503), path
        assert "Server Error" not in page.content()
        shot(page, artifacts, re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "ops")

    # Retry one task result from its row.
    page.goto(f"{base}/ops/tasks/")
    page.click(f"#task-results button.retry-one[value='{prepared['result'].pk}']")
    page.wait_for_selector(".messagelist")
    assert "1 retried" in page.inner_text(".messagelist")
    shot(page, artifacts, "after-retry")
    [(key, message)] = prepared["broker"].messages()
    assert key == "celery"  # send_whatsapp_message_task: queue celery, priority REPLY (0)
    assert message_body(message)[0] == [prepared["failed"].pk]

    # Replay the failed send from its row.
    prepared["broker"].clear()
    page.goto(f"{base}/ops/failed/")
    page.click(f"#failed-sends button.replay-one[value='{prepared['failed'].pk}']")
    page.wait_for_selector(".messagelist")
    assert "Replay of 1 failed send" in page.inner_text(".messagelist")
    shot(page, artifacts, "after-replay")
    row = OutboundMessage.objects.get(pk=prepared["failed"].pk)
    assert row.status == OutboundStatus.QUEUED
    assert [m["headers"]["task"] for _, m in prepared["broker"].messages()] == [
        "send_whatsapp_message_task"
    ]

    # Look a customer up, as an operator asked "why no reply?" would.
    page.goto(f"{base}/ops/lookup/")
    page.fill("input[name=q]", prepared["failed"].contact.wa_id)
    page.click("#lookup-form button")
    page.wait_for_selector(".diagnosis")
    shot(page, artifacts, "lookup-customer")
