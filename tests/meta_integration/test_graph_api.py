"""The Graph API client over real HTTP: body, auth, timeouts, odd answers, circuit breaker."""

from __future__ import annotations

import json
import time

import pybreaker
import pytest
import requests

from meta_integration import graph_api
from meta_integration.messages import text_message
from meta_integration.models import WhatsAppNumber
from tests.http_stub import StubHTTPServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def num(db):
    return WhatsAppNumber.objects.create(phone_number_id="106540352242922", api_version="v26.0")


@pytest.fixture(autouse=True)
def fresh_breaker():
    """Each test builds its breaker from its own settings (state lives in the flushed Redis)."""
    graph_api._process["breaker"] = None
    yield
    graph_api._process["breaker"] = None


def test_send_posts_compact_utf8_with_the_envelope_and_callback_data(sandbox, num):
    result = graph_api.send_message(num, "16505551234", text_message("Olá 😮"), "wamid.IN:0")
    assert result.outcome.ok
    [recorded] = sandbox.app.sent_messages()
    assert result.wamid == recorded["wamid"]
    # The fixture's sandbox refuses anything but compact UTF-8 with raw characters.
    assert recorded["payload"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "Olá 😮"},
        "biz_opaque_callback_data": "wamid.IN:0",
    }


def test_mark_as_read(sandbox, num):
    assert graph_api.mark_as_read(num, "wamid.ABC").outcome.ok
    assert sandbox.app.reads[0]["message_id"] == "wamid.ABC"


def test_the_numbers_own_token_overrides_the_default(sandbox, num):
    sandbox.app.config.access_tokens = ["sandbox-access-token"]
    num.access_token_override = "a-number-token"
    outcome = graph_api.send_message(num, "1", text_message("x")).outcome
    assert outcome.permanent and outcome.code == 190 and outcome.http_status == 401
    sandbox.app.config.access_tokens = ["a-number-token"]
    assert graph_api.send_message(num, "1", text_message("x")).outcome.ok


def test_the_url_has_the_numbers_api_version(settings, num):
    settings.META_GRAPH_BASE_URL = "https://graph.example.com/"
    assert graph_api.messages_url(num) == "https://graph.example.com/v26.0/106540352242922/messages"


def test_one_pooled_session_per_process_without_urllib3_retries():
    session = graph_api.http_session()
    assert graph_api.http_session() is session
    adapter = session.get_adapter("https://graph.facebook.com")
    assert adapter.max_retries.total == 0


def test_a_refused_connection_is_retryable_and_counts_for_the_breaker(settings, num, redis_conn):
    settings.META_GRAPH_BASE_URL = "http://127.0.0.1:1"
    outcome = graph_api.send_message(num, "1", text_message("x")).outcome
    assert outcome.retryable and outcome.counts_for_breaker
    assert outcome.details.startswith("connect_error")


def test_a_read_timeout_is_retryable_but_waits_for_the_echo(sandbox, settings, num):
    settings.META_HTTP_TIMEOUT = 0.2
    sandbox.app.set_faults({"latency_ms": 600})
    outcome = graph_api.send_message(num, "1", text_message("x")).outcome
    assert outcome.retryable
    assert outcome.details.startswith("read_timeout")
    assert outcome.min_delay >= 15  # Meta may have it: give its status echo time to arrive


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (502, b"<html>Bad Gateway</html>", "retryable"),
        (400, b"<html>Bad Request</html>", "permanent"),
        (400, b'{"error": "not an object"}', "permanent"),
        (200, b"not json at all", "success"),
        (200, b"", "success"),
    ],
)
def test_malformed_answers_are_classified_never_raised(
    settings, num, redis_conn, status, body, kind
):
    # Answers every POST with a fixed status and body (a proxy's HTML page, garbage...).
    odd = StubHTTPServer(lambda headers, _: (status, "text/html", body))
    settings.META_GRAPH_BASE_URL = odd.url
    try:
        result = graph_api.send_message(num, "1", text_message("x"))
    finally:
        odd.close()
    assert result.outcome.kind == kind
    assert result.wamid is None


# --- circuit breaker ---------------------------------------------------------------------------


@pytest.fixture
def small_breaker(settings):
    settings.META_BREAKER_FAIL_MAX = 3
    settings.META_BREAKER_RESET_SECONDS = 1.0


def test_the_breaker_opens_after_consecutive_failures_and_stops_calling(
    sandbox, num, small_breaker, settings
):
    # pybreaker keeps the opening time in whole seconds: a longer reset keeps this test from
    # seeing a half-open circuit when the opening falls at the end of a second.
    settings.META_BREAKER_RESET_SECONDS = 5.0
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [500]})
    outcomes = [graph_api.send_message(num, "1", text_message("x")).outcome for _ in range(3)]
    assert all(o.retryable and o.attempted for o in outcomes)
    assert sandbox.app.stats()["requests"] == 3
    assert graph_api.graph_breaker().current_state == pybreaker.STATE_OPEN

    for _ in range(5):
        outcome = graph_api.send_message(num, "1", text_message("x")).outcome
        assert outcome.retryable and not outcome.attempted
        assert outcome.details == "circuit breaker open"
        assert outcome.min_delay >= 1.0
    assert sandbox.app.stats()["requests"] == 3  # no HTTP call while open


def test_the_breaker_closes_again_once_the_api_recovers(sandbox, num, small_breaker):
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [500]})
    for _ in range(3):
        graph_api.send_message(num, "1", text_message("x"))
    assert graph_api.graph_breaker().current_state == pybreaker.STATE_OPEN
    sandbox.app.clear_faults()
    time.sleep(2.1)  # reset_timeout (1 s; pybreaker stores the opening second)
    result = graph_api.send_message(num, "1", text_message("x"))
    assert result.outcome.ok and result.wamid
    assert graph_api.graph_breaker().current_state == pybreaker.STATE_CLOSED
    assert graph_api.send_message(num, "1", text_message("y")).outcome.ok


def test_the_breaker_state_is_shared_through_redis(sandbox, num, small_breaker, redis_conn):
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [500]})
    for _ in range(3):
        graph_api.send_message(num, "1", text_message("x"))
    graph_api._process["breaker"] = None  # as another worker process would start
    assert graph_api.graph_breaker().current_state == pybreaker.STATE_OPEN
    assert redis_conn.get(f"{graph_api.BREAKER_NAMESPACE}:pybreaker:state") == b"open"


@pytest.mark.parametrize("code", [131026, 100, 131047, 131056])
def test_permanent_refusals_and_the_pair_limit_never_open_the_breaker(
    sandbox, num, small_breaker, code
):
    sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [code]})
    for _ in range(6):
        assert not graph_api.send_message(num, "1", text_message("x")).outcome.ok
    assert sandbox.app.stats()["requests"] == 6
    assert graph_api.graph_breaker().current_state == pybreaker.STATE_CLOSED


def test_a_success_resets_the_consecutive_failure_count(sandbox, num, small_breaker):
    for _ in range(3):
        sandbox.app.set_faults({"error_rate": 1.0, "error_codes": [500]})
        graph_api.send_message(num, "1", text_message("x"))
        graph_api.send_message(num, "1", text_message("x"))
        sandbox.app.clear_faults()
        assert graph_api.send_message(num, "1", text_message("x")).outcome.ok
    assert graph_api.graph_breaker().current_state == pybreaker.STATE_CLOSED


# --- the per-number rate limit as the client sees it -------------------------------------------


def test_over_the_rate_with_no_wait_allowed_is_a_local_retryable_non_attempt(
    sandbox, num, settings
):
    settings.META_MESSAGES_PER_SECOND = 1
    settings.META_RATE_LIMIT_MAX_WAIT_SECONDS = 0.0
    assert graph_api.send_message(num, "1", text_message("x")).outcome.ok
    outcome = graph_api.send_message(num, "1", text_message("y")).outcome
    assert outcome.retryable and not outcome.attempted and outcome.details == "rate limited locally"
    assert 0 < outcome.min_delay <= 1.0
    assert sandbox.app.stats()["requests"] == 1


def test_a_short_wait_for_a_slot_is_absorbed(sandbox, num, settings):
    settings.META_MESSAGES_PER_SECOND = 10
    start = time.monotonic()
    assert all(graph_api.send_message(num, "1", text_message(str(i))).outcome.ok for i in range(5))
    assert time.monotonic() - start >= 0.35  # 5 slots 100 ms apart


def test_body_is_json_parseable_by_requests(sandbox, num):
    # Sanity: our encoder's bytes are what the sandbox recorded.
    graph_api.send_message(num, "1", text_message("x"))
    raw = requests.get(f"{sandbox.url}/sandbox/meta/sent", timeout=5).content
    assert json.loads(raw)["messages"][0]["payload"]["to"] == "1"


def test_read_receipts_never_take_a_messages_slot(sandbox, num, settings):
    settings.META_MESSAGES_PER_SECOND = 1
    settings.META_RATE_LIMIT_MAX_WAIT_SECONDS = 0.0
    assert graph_api.mark_as_read(num, "wamid.A").outcome.ok
    assert graph_api.send_message(num, "1", text_message("x")).outcome.ok
    assert not graph_api.mark_as_read(num, "wamid.B").outcome.attempted  # receipts: own bucket
    assert not graph_api.send_message(num, "1", text_message("y")).outcome.attempted


def test_bulk_sends_are_paced_by_their_own_budget_and_replies_are_not(
    sandbox, num, settings, redis_conn
):
    """Each send brings three status webhooks back: bulk work takes at most its budget of the
    number's throughput, and a reply never waits for that budget."""
    settings.META_BULK_MESSAGES_PER_SECOND = 0.5  # one slot per 2 s
    settings.META_BULK_MAX_WAIT_SECONDS = 0.2
    assert graph_api.send_message(num, "1", text_message("bulk 1"), bulk=True).outcome.ok
    paced = graph_api.send_message(num, "1", text_message("bulk 2"), bulk=True).outcome
    assert paced.retryable and not paced.attempted  # nothing was sent: retry when told
    assert paced.min_delay > 1.0
    assert graph_api.send_message(num, "1", text_message("a reply")).outcome.ok
    assert [m["payload"]["text"]["body"] for m in sandbox.app.sent_messages()] == [
        "bulk 1",
        "a reply",
    ]


def test_bulk_sends_yield_to_a_chat_in_progress(sandbox, num, settings, redis_conn):
    from meta_integration import ratelimit

    settings.META_BULK_MESSAGES_PER_SECOND = 100.0
    settings.META_BULK_MESSAGES_PER_SECOND_DURING_CHAT = 0.5
    settings.META_BULK_MAX_WAIT_SECONDS = 0.2
    assert graph_api.send_message(num, "1", text_message("quiet 1"), bulk=True).outcome.ok
    assert graph_api.send_message(num, "1", text_message("quiet 2"), bulk=True).outcome.ok

    ratelimit.chat_activity_mark()  # a customer wrote: bulk drops to one per 2 s
    assert graph_api.send_message(num, "1", text_message("chat 1"), bulk=True).outcome.ok
    paced = graph_api.send_message(num, "1", text_message("chat 2"), bulk=True).outcome
    assert paced.retryable and not paced.attempted
    assert graph_api.send_message(num, "1", text_message("a reply")).outcome.ok

    redis_conn.delete(ratelimit.CHAT_ACTIVE_KEY)  # the chat went quiet (2 s later)
    redis_conn.delete(ratelimit.phone_number_key(num.phone_number_id, "bulk"))
    assert graph_api.send_message(num, "1", text_message("quiet 3"), bulk=True).outcome.ok
    bodies = [m["payload"]["text"]["body"] for m in sandbox.app.sent_messages()]
    assert bodies == ["quiet 1", "quiet 2", "chat 1", "a reply", "quiet 3"]


def test_a_bulk_send_sleeps_for_a_near_slot_instead_of_retrying(sandbox, num, settings):
    settings.META_BULK_MESSAGES_PER_SECOND = 4.0  # slots 250 ms apart
    settings.META_BULK_MAX_WAIT_SECONDS = 1.0
    started = time.monotonic()
    for index in range(3):
        assert graph_api.send_message(num, "1", text_message(f"b{index}"), bulk=True).outcome.ok
    assert 0.45 <= time.monotonic() - started < 1.5  # waited for two slots, sent all three
