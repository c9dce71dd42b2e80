"""The template catalogue: pure rules, the sync through the real client against the live
sandbox (paging included), the template webhooks through the real webhook view, and a template
send refused with Meta's code."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from meta_integration import graph_api, parsing, sending, services, templates
from meta_integration.messages import template_message
from meta_integration.models import MessageTemplate, OutboundStatus, TemplateStatus, WebhookEvent
from meta_integration.templates import TemplateRow
from tests.factories import make_contact
from tests.meta_integration.conftest import load_fixture
from whatsappcrm_backend import publishing

WABA = "102290129340398"  # settings.META_WABA_ID in the test settings: the sandbox's WABA
SEEDED = {
    ("ticket_settled", "en"): (TemplateStatus.APPROVED, 3),
    ("hello_world", "en_US"): (TemplateStatus.APPROVED, 0),
    ("order_update", "en"): (TemplateStatus.APPROVED, 2),
    ("promo_paused", "en"): (TemplateStatus.PAUSED, 1),
    ("old_offer", "en"): (TemplateStatus.REJECTED, 1),
}


@pytest.fixture(autouse=True)
def fresh_breaker():
    graph_api._process["breaker"] = None


def catalogue() -> dict[tuple[str, str], tuple[str, int]]:
    return {
        (t.name, t.language): (t.status, t.body_parameter_count)
        for t in MessageTemplate.objects.filter(waba_id=WABA)
    }


def store(*rows: tuple[str, str, str, int], waba_id: str = WABA) -> None:
    templates.catalogue_store(
        waba_id=waba_id,
        rows=[
            TemplateRow(name=n, language=lang, status=status, body_parameter_count=count)
            for n, lang, status, count in rows
        ],
    )


# --- pure rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("components", "count"),
    [
        ([{"type": "BODY", "text": "Ticket {{1}}: {{2}}, paid {{3}}."}], 3),
        ([{"type": "BODY", "text": "{{1}} and again {{1}}, then {{ 2 }}"}], 2),
        ([{"type": "BODY", "text": "Hi {{first_name}}, order {{order_id}}"}], 2),
        ([{"type": "HEADER", "text": "{{1}}"}, {"type": "BODY", "text": "no params"}], 0),
        ([{"type": "body", "text": "{{1}}"}], 1),
        ([], 0),
        ("not a list", 0),
    ],
)
def test_body_parameter_count_reads_the_body_placeholders(components, count):
    assert templates.body_parameter_count(components) == count


def test_a_page_gives_rows_and_the_cursor_only_when_a_next_page_exists():
    page = {
        "data": [
            {
                "name": "ticket_settled",
                "language": "en",
                "status": "APPROVED",
                "category": "utility",
                "id": "1",
                "components": [{"type": "BODY", "text": "{{1}} {{2}} {{3}}"}],
            },
            {"name": "old_offer", "language": "en", "status": "REJECTED", "rejected_reason": "X"},
            {"name": "", "language": "en", "status": "APPROVED"},
            {"name": "x", "language": "en", "status": "WHATEVER"},
            "junk",
        ],
        "paging": {"cursors": {"before": "B", "after": "A"}, "next": "https://graph/..."},
    }
    rows, after, skipped = templates.parse_template_page(page)
    assert [(r.name, r.status, r.body_parameter_count, r.category) for r in rows] == [
        ("ticket_settled", "APPROVED", 3, "UTILITY"),
        ("old_offer", "REJECTED", 0, ""),
    ]
    assert rows[1].rejected_reason == "X"
    assert after == "A" and skipped == ["data[2]", "data[3]", "data[4]"]
    del page["paging"]["next"]  # the last page still carries cursors
    assert templates.parse_template_page(page)[1] == ""
    with pytest.raises(templates.TemplateSyncError):
        templates.parse_template_page({"error": {"code": 190}})


@pytest.mark.parametrize(
    ("status", "expected", "supplied", "code"),
    [
        (TemplateStatus.APPROVED, 3, 3, None),
        (TemplateStatus.APPROVED, 3, 2, 132000),
        (TemplateStatus.APPROVED, 0, 1, 132000),
        (None, 0, 0, 132001),
        (TemplateStatus.DELETED, 0, 0, 132001),
        (TemplateStatus.PENDING_DELETION, 0, 0, 132001),
        (TemplateStatus.REJECTED, 1, 1, 132001),
        (TemplateStatus.PENDING, 1, 1, 132001),
        (TemplateStatus.IN_APPEAL, 1, 1, 132001),
        (TemplateStatus.PAUSED, 1, 1, 132015),
        (TemplateStatus.DISABLED, 1, 1, 132016),
    ],
)
def test_refusal_rule_uses_metas_codes(status, expected, supplied, code):
    verdict = templates.refusal_rule(
        name="t", language="en", supplied=supplied, status=status, expected=expected
    )
    assert (verdict[0] if verdict else None) == code


def test_the_sent_template_is_read_from_the_builders_payload():
    payload = template_message("ticket_settled", "en", [1, "won", "9.50"])
    assert templates.sent_template(payload) == ("ticket_settled", "en", 3)
    assert templates.sent_template(template_message("hello_world")) == ("hello_world", "en_US", 0)
    assert templates.sent_template({"type": "text", "text": {"body": "x"}}) is None
    assert templates.sent_template({"type": "template", "template": {"name": "x"}}) is None


@pytest.mark.parametrize(
    ("fixture", "kind", "name", "language", "template_id"),
    [
        (
            "template_status_update__approved",
            "message_template_status_update",
            "order_confirmation",
            "en_US",
            "1689556908129832",
        ),
        (
            "template_status_update__rejected",
            "message_template_status_update",
            "abandoned_cart",
            "en",
            "1689556908129835",
        ),
        (
            "template_category_update__marketing",
            "template_category_update",
            "my_message_template",
            "he",
            "12345678",
        ),
        (
            "template_components_update__all",
            "message_template_components_update",
            "order_confirmation",
            "en_US",
            "1315502779341834",
        ),
        (
            "template_quality_update__yellow",
            "message_template_quality_update",
            "welcome_template",
            "en_US",
            "806312974732579",
        ),
    ],
)
def test_template_webhooks_parse_into_template_events(fixture, kind, name, language, template_id):
    batch = parsing.parse_event(load_fixture(fixture))
    [event] = batch.template_events
    assert (event.kind, event.name, event.language, event.template_id) == (
        kind,
        name,
        language,
        template_id,
    )
    assert event.waba_id and event.time is not None
    assert batch.unhandled == [] and batch.skipped == []
    assert batch.messages == [] and batch.statuses == []


def test_a_template_change_without_a_name_is_skipped_not_raised():
    event = load_fixture("template_status_update__approved")
    del event["entry"][0]["changes"][0]["value"]["message_template_name"]
    batch = parsing.parse_event(event)
    assert batch.template_events == [] and len(batch.skipped) == 1


# --- the refusal against the catalogue ---------------------------------------------------------


@pytest.mark.django_db
def test_a_catalogue_never_synced_has_no_opinion():
    assert templates.template_refusal(waba_id=WABA, payload=template_message("any", "en")) is None


@pytest.mark.django_db
def test_template_refusal_judges_by_the_catalogue_of_that_waba():
    store(
        ("ticket_settled", "en", TemplateStatus.APPROVED, 3),
        ("promo_paused", "en", TemplateStatus.PAUSED, 1),
        ("gone", "en", TemplateStatus.DISABLED, 0),
        ("old_offer", "en", TemplateStatus.REJECTED, 1),
    )

    def verdict(payload, waba_id=WABA):
        refusal = templates.template_refusal(waba_id=waba_id, payload=payload)
        return refusal[0] if refusal else None

    assert verdict(template_message("ticket_settled", "en", ["1", "won", "2.00"])) is None
    assert verdict(template_message("ticket_settled", "en", ["1", "won"])) == 132000
    assert verdict(template_message("promo_paused", "en", ["x"])) == 132015
    assert verdict(template_message("gone", "en")) == 132016
    assert verdict(template_message("old_offer", "en", ["x"])) == 132001
    assert verdict(template_message("nope", "en")) == 132001
    wrong_language = templates.template_refusal(
        waba_id=WABA, payload=template_message("ticket_settled", "fr", ["1", "2", "3"])
    )
    assert wrong_language[0] == 132001 and "exists in en" in wrong_language[1]
    assert verdict(template_message("nope", "en"), waba_id="999") is None  # another WABA


@pytest.mark.django_db
def test_store_upserts_and_marks_what_meta_no_longer_lists_deleted():
    store(("a", "en", "APPROVED", 1), ("b", "en", "APPROVED", 0))
    store(("a", "en", "PAUSED", 2), ("c", "en", "PENDING", 0))
    assert catalogue() == {
        ("a", "en"): ("PAUSED", 2),
        ("b", "en"): ("DELETED", 0),
        ("c", "en"): ("PENDING", 0),
    }
    assert MessageTemplate.objects.count() == 3


# --- the sync through the real client, over HTTP, against the sandbox ----------------------------


@pytest.mark.django_db
def test_sync_pages_through_the_sandbox_catalogue(sandbox):
    result = templates.templates_sync(number_or_waba=WABA, page_size=2)
    assert (result["pages"], result["templates"], result["created"]) == (3, 5, 5)
    assert catalogue() == SEEDED
    ticket = MessageTemplate.objects.get(name="ticket_settled")
    assert ticket.category == "UTILITY" and ticket.template_id
    assert ticket.components[0]["type"] == "BODY"
    assert MessageTemplate.objects.get(name="old_offer").rejected_reason == "INVALID_FORMAT"

    # Meta's side changes: one paused, one gone, one new.
    sandbox.app.set_template({"name": "order_update", "language": "en", "status": "PAUSED"})
    sandbox.app.catalogue.remove(WABA, "hello_world", "en_US")
    sandbox.app.set_template(
        {"name": "welcome", "language": "pt_BR", "body": "Olá {{1}}!", "category": "marketing"}
    )
    result = templates.templates_sync(number_or_waba=WABA, page_size=2)
    assert (result["templates"], result["created"], result["deleted"]) == (5, 1, 1)
    assert catalogue() == {
        **SEEDED,
        ("order_update", "en"): (TemplateStatus.PAUSED, 2),
        ("hello_world", "en_US"): (TemplateStatus.DELETED, 0),
        ("welcome", "pt_BR"): (TemplateStatus.APPROVED, 1),
    }


@pytest.mark.django_db
def test_a_failed_sync_changes_nothing(sandbox, settings):
    store(("kept", "en", "APPROVED", 0))
    settings.META_ACCESS_TOKEN = "wrong-token"
    sandbox.app.config.access_tokens = ["the-right-token"]
    with pytest.raises(templates.TemplateSyncError, match="190"):
        templates.templates_sync(number_or_waba=WABA)
    assert catalogue() == {("kept", "en"): ("APPROVED", 0)}


@pytest.mark.django_db
def test_a_numbers_own_token_and_waba_are_used(sandbox, settings):
    from tests.factories import make_number

    number = make_number(phone_number_id="555", waba_id="777", access_token_override="own-token")
    sandbox.app.config.access_tokens = ["own-token"]
    settings.META_ACCESS_TOKEN = "global-token"
    assert templates.templates_sync(number_or_waba=number)["waba_id"] == "777"
    assert templates.templates_sync(number_or_waba="777")["templates"] == 5  # found by its WABA
    assert MessageTemplate.objects.filter(waba_id="777").count() == 5
    with pytest.raises(templates.TemplateSyncError, match="190"):
        templates.templates_sync(number_or_waba=WABA)  # no number of ours: the global token


@pytest.mark.django_db
def test_the_sync_task_syncs_our_waba_and_reports(sandbox):
    from meta_integration.template_tasks import sync_message_templates_task

    result = sync_message_templates_task()
    assert result["failed"] == {} and result["synced"][WABA]["templates"] == 5
    assert catalogue() == SEEDED


def test_the_sync_task_is_registered_routed_and_scheduled_hourly():
    from meta_integration.schedules import SCHEDULES
    from whatsappcrm_backend.celery import TASK_ROUTES, app

    assert "sync_message_templates_task" in app.tasks
    assert "sync_message_templates_task" in TASK_ROUTES
    [entry] = [s for s in SCHEDULES if s["task"] == "sync_message_templates_task"]
    assert entry["every_seconds"] == 3600


# --- template webhooks applied to the catalogue --------------------------------------------------


def event_of(fixture: str, **value) -> parsing.TemplateEvent:
    body = load_fixture(fixture)
    body["entry"][0]["changes"][0]["value"].update(value)
    body["entry"][0]["id"] = WABA
    body["entry"][0]["time"] = int(time.time()) + 5
    [event] = parsing.parse_event(body).template_events
    return event


@pytest.mark.django_db
def test_status_category_and_components_webhooks_update_the_row(published):
    store(("order_confirmation", "en_US", "APPROVED", 1))
    result = templates.template_events_apply(
        [event_of("template_status_update__approved", event="PAUSED")]
    )
    assert result["applied"] == 1
    assert catalogue()[("order_confirmation", "en_US")] == ("PAUSED", 1)

    rejected = event_of(
        "template_status_update__rejected",
        message_template_name="order_confirmation",
        message_template_language="en_US",
    )
    templates.template_events_apply([rejected])
    row = MessageTemplate.objects.get(name="order_confirmation")
    assert row.status == "REJECTED" and "parameters placed next to each other" in (
        row.rejected_reason
    )
    templates.template_events_apply(
        [
            event_of(
                "template_category_update__marketing",
                message_template_name="order_confirmation",
                message_template_language="en_US",
            ),
            event_of("template_components_update__all"),
        ]
    )
    row.refresh_from_db()
    assert row.category == "MARKETING"
    assert row.body_parameter_count == 2  # "Thank you for your order, {{1}}! ... {{2}}."
    assert [c["type"] for c in row.components] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    assert published.calls == []


@pytest.mark.django_db
def test_an_event_older_than_the_row_changes_nothing():
    store(("order_confirmation", "en_US", "APPROVED", 1))
    old = load_fixture("template_status_update__approved")
    old["entry"][0]["id"] = WABA
    old["entry"][0]["changes"][0]["value"]["event"] = "PAUSED"
    old["entry"][0]["time"] = int((timezone.now() - timedelta(hours=1)).timestamp())
    [event] = parsing.parse_event(old).template_events
    assert templates.template_events_apply([event])["stale"] == 1
    assert catalogue()[("order_confirmation", "en_US")] == ("APPROVED", 1)
    # Events apply in Meta's order even when delivered late: PAUSED then APPROVED (later).
    paused = event_of("template_status_update__approved", event="PAUSED")
    approved = event_of("template_status_update__approved", event="APPROVED")
    approved = dataclasses.replace(approved, time=paused.time + timedelta(seconds=1))
    templates.template_events_apply([paused])
    templates.template_events_apply([approved])
    templates.template_events_apply([paused])  # a redelivery of the older one
    assert catalogue()[("order_confirmation", "en_US")] == ("APPROVED", 1)


@pytest.mark.django_db
def test_an_unknown_template_of_a_kept_catalogue_triggers_a_sync(
    published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        templates.template_events_apply([event_of("template_status_update__approved")])
    assert published.calls == []  # never synced: left to the hourly sync
    store(("something_else", "en", "APPROVED", 0))
    with django_capture_on_commit_callbacks(execute=True):
        result = templates.template_events_apply([event_of("template_status_update__approved")])
    assert result["unknown"] == 1
    assert published.of("sync_message_templates_task") == [([WABA], {"retry": False})]
    assert not MessageTemplate.objects.filter(name="order_confirmation").exists()


@pytest.mark.django_db
def test_a_quality_update_changes_nothing():
    store(("welcome_template", "en_US", "APPROVED", 0))
    result = templates.template_events_apply([event_of("template_quality_update__yellow")])
    assert result["ignored"] == 1
    assert catalogue()[("welcome_template", "en_US")] == ("APPROVED", 0)


@pytest.mark.django_db(transaction=True)
def test_the_sandbox_pauses_a_template_by_signed_webhook_through_the_real_view(
    live_server, sandbox, published, settings
):
    templates.templates_sync(number_or_waba=WABA)
    sandbox.app.config.webhook_url = f"{live_server.url}/webhooks/whatsapp/"
    sandbox.app.config.app_secret = settings.META_APP_SECRET
    payload = template_message("ticket_settled", "en", ["7", "won", "12.00"])
    assert templates.template_refusal(waba_id=WABA, payload=payload) is None

    sandbox.app.set_template(
        {"name": "ticket_settled", "language": "en", "status": "PAUSED"}, webhook=True
    )
    deadline = time.monotonic() + 20
    # A template event carries no customer message: the view queues the status drain.
    while not published.of("drain_status_events_task") and time.monotonic() < deadline:
        time.sleep(0.05)
    [(args, _)] = published.of("drain_status_events_task")
    # The worker's part, run here: the task the view published.
    publishing.app.loader.import_default_modules()  # a worker's autodiscovery
    publishing.app.tasks["drain_status_events_task"].apply(args=args).get()
    assert WebhookEvent.objects.get().processed_at is not None
    assert catalogue()[("ticket_settled", "en")] == (TemplateStatus.PAUSED, 3)
    assert templates.template_refusal(waba_id=WABA, payload=payload)[0] == 132015
    assert sandbox.app.callbacks.delivered == 1


# --- a template send end to end ------------------------------------------------------------------


def queue_template(contact, message, key="tpl:0"):
    contact.last_inbound_at = timezone.now() - timedelta(days=3)  # outside the window
    contact.save()
    row, _ = services.outbound_message_create(contact=contact, idempotency_key=key, message=message)
    return row


@pytest.mark.django_db
def test_a_wrong_parameter_count_fails_before_calling_meta_once_synced(sandbox, number):
    templates.templates_sync(number_or_waba=WABA)
    requests_before = sandbox.app.stats()["requests"]
    contact = make_contact(number=number)
    row = queue_template(contact, template_message("ticket_settled", "en", ["1", "won"]))
    result = sending.outbound_send(outbound_id=row.pk)
    assert (result.outcome, result.code) == ("failed", 132000)
    row.refresh_from_db()
    assert (row.status, row.error_code) == (OutboundStatus.FAILED, 132000)
    assert "takes 3 body parameters; 2 given" in row.error_details
    assert sandbox.app.stats()["requests"] == requests_before  # Meta was never called


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("message", "code"),
    [
        (template_message("ticket_settled", "en", ["1", "won"]), 132000),
        (template_message("ticket_settled", "pt_BR", ["1", "won", "2"]), 132001),
        (template_message("promo_paused", "en", ["x"]), 132015),
        (template_message("old_offer", "en", ["x"]), 132001),
    ],
)
def test_without_a_catalogue_the_sandbox_refuses_and_the_row_fails_permanently(
    sandbox, number, message, code
):
    contact = make_contact(number=number)
    row = queue_template(contact, message)
    result = sending.outbound_send(outbound_id=row.pk)
    assert (result.outcome, result.code, result.retry_in) == ("failed", code, None)
    row.refresh_from_db()
    assert (row.status, row.error_code, row.attempts) == (OutboundStatus.FAILED, code, 1)
    assert sandbox.app.stats()["refused"] == 1


@pytest.mark.django_db
def test_a_correct_template_outside_the_window_is_sent(sandbox, number):
    templates.templates_sync(number_or_waba=WABA)
    contact = make_contact(number=number)
    row = queue_template(contact, template_message("ticket_settled", "en", ["1", "won", "9.50"]))
    assert sending.outbound_send(outbound_id=row.pk).outcome == "sent"
    [sent] = sandbox.app.sent_messages()
    assert sent["payload"]["template"]["name"] == "ticket_settled"


def test_event_times_are_utc_datetimes():
    event = parsing.parse_event(load_fixture("template_status_update__approved")).template_events[0]
    assert event.time == datetime.fromtimestamp(1751247548, tz=UTC)


# --- the admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_template_admin_lists_filters_and_is_read_only(admin_client, client):
    store(("ticket_settled", "en", "APPROVED", 3), ("promo_paused", "en", "PAUSED", 1))
    url = reverse("admin:meta_integration_messagetemplate_changelist")
    page = admin_client.get(url, {"status__exact": "PAUSED", "q": "promo"})
    assert page.status_code == 200
    assert b"promo_paused" in page.content and b"ticket_settled" not in page.content
    assert b"Sync from Meta now" in page.content
    row = MessageTemplate.objects.get(name="ticket_settled")
    detail = admin_client.get(
        reverse("admin:meta_integration_messagetemplate_change", args=[row.pk])
    )
    assert detail.status_code == 200 and b'name="status"' not in detail.content  # no inputs
    assert (
        admin_client.get(reverse("admin:meta_integration_messagetemplate_add")).status_code == 403
    )
    assert client.get(url).status_code == 302  # not staff: to the login page


@pytest.mark.django_db
def test_sync_from_meta_now_fills_an_empty_catalogue(admin_client, client, sandbox):
    url = reverse("admin:meta_integration_messagetemplate_sync")
    assert admin_client.get(url).status_code == 405
    assert client.post(url).status_code == 302 and not MessageTemplate.objects.exists()
    response = admin_client.post(url, follow=True)
    assert b"5 template(s) from Meta, 5 new, 0 gone" in response.content
    assert catalogue() == SEEDED


@pytest.mark.django_db
def test_the_sync_action_syncs_the_selected_templates_waba(admin_client, sandbox):
    store(("stale", "en", "APPROVED", 0))
    response = admin_client.post(
        reverse("admin:meta_integration_messagetemplate_changelist"),
        {
            "action": "sync_selected",
            "_selected_action": [MessageTemplate.objects.get().pk],
        },
        follow=True,
    )
    assert b"1 gone" in response.content
    assert catalogue() == {**SEEDED, ("stale", "en"): (TemplateStatus.DELETED, 0)}


@pytest.mark.django_db
def test_a_failed_sync_is_shown_as_an_error(admin_client, sandbox, settings):
    settings.META_ACCESS_TOKEN = "wrong"
    sandbox.app.config.access_tokens = ["right"]
    response = admin_client.post(
        reverse("admin:meta_integration_messagetemplate_sync"), follow=True
    )
    assert b"sync failed" in response.content
