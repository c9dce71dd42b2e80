"""errors.py: every Graph answer maps to success, retryable or permanent, and nothing raises."""

from __future__ import annotations

import random

import pytest

from meta_integration import errors


def meta_error(code, details: str = "details") -> dict:
    return {
        "error": {
            "message": f"(#{code}) message",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "Axyz",
        }
    }


RETRYABLE = [
    (130429, 400, 1.0),
    (131056, 400, 6.0),
    (131057, 400, 60.0),
    (4, 400, 300.0),
    (80007, 400, 300.0),
    (1, 500, 0.0),
    (2, 503, 0.0),
    (131000, 500, 0.0),
    (131016, 503, 0.0),
]
PERMANENT = [
    (131047, 400),
    (131026, 400),
    (131048, 400),
    (131049, 400),
    (100, 400),
    (131009, 400),
    (131008, 400),
    (190, 401),
    (0, 401),
    (132001, 404),
    (999999, 400),  # an unknown 4xx code
]


@pytest.mark.parametrize(("code", "http_status", "min_delay"), RETRYABLE)
def test_retryable_codes(code, http_status, min_delay):
    outcome = errors.classify_response(http_status, meta_error(code))
    assert outcome.retryable and not outcome.ok and not outcome.permanent
    assert outcome.code == code
    assert outcome.min_delay == min_delay
    assert "details" in outcome.details


@pytest.mark.parametrize(("code", "http_status"), PERMANENT)
def test_permanent_codes(code, http_status):
    outcome = errors.classify_response(http_status, meta_error(code))
    assert outcome.permanent and not outcome.retryable
    assert outcome.code == code
    assert not outcome.counts_for_breaker  # a refusal means the API is up


def test_pair_limit_is_about_one_recipient_and_never_opens_the_breaker():
    assert not errors.classify_response(400, meta_error(131056)).counts_for_breaker
    assert errors.classify_response(400, meta_error(130429)).counts_for_breaker


@pytest.mark.parametrize("http_status", [500, 502, 503, 504, 599])
def test_any_5xx_is_retryable_whatever_the_body(http_status):
    for body in ("<html>Bad gateway</html>", "", None, {"error": "x"}, meta_error(100)):
        outcome = errors.classify_response(http_status, body)
        assert outcome.retryable and outcome.counts_for_breaker


@pytest.mark.parametrize(
    "body",
    [
        "<html>nope</html>",
        "",
        None,
        [],
        {"error": None},
        {"error": {"code": "abc"}},
        {"error": {"code": True}},
        {"error": {"message": 5, "error_data": "x"}},
        {"unexpected": 1},
    ],
)
def test_a_malformed_4xx_body_is_permanent_without_crashing(body):
    outcome = errors.classify_response(400, body)
    assert outcome.permanent
    assert outcome.details


def test_a_code_given_as_a_string_is_still_read():
    outcome = errors.classify_response(400, {"error": {"code": "131056"}})
    assert outcome.retryable and outcome.code == 131056


@pytest.mark.parametrize("status", [408, 429])
def test_timeout_and_too_many_requests_statuses_are_retryable(status):
    assert errors.classify_response(status, "").retryable


@pytest.mark.parametrize(
    "body", [{"messages": [{"id": "wamid.X"}]}, {"success": True}, "garbage", None, {}]
)
def test_any_2xx_is_success_even_when_unreadable(body):
    # A 2xx means Meta accepted: resending because we cannot read the wamid would duplicate.
    assert errors.classify_response(200, body).ok


def test_a_2xx_with_an_error_body_believes_the_error():
    assert errors.classify_response(200, meta_error(131026)).permanent


def test_wamid_from_send_answer():
    assert errors.wamid_from({"messages": [{"id": "wamid.X"}]}) == "wamid.X"
    for body in ({"messages": []}, {"messages": [{"id": 5}]}, "x", None, {"messages": "x"}):
        assert errors.wamid_from(body) is None


@pytest.mark.parametrize(
    ("kind", "min_delay"),
    [
        ("connect_error", 0.0),
        ("connect_timeout", 0.0),
        ("read_timeout", 15.0),
        ("connection_lost", 15.0),
    ],
)
def test_transport_failures_are_retryable_and_ambiguous_ones_wait_for_the_echo(kind, min_delay):
    outcome = errors.classify_transport(kind, "boom")
    assert outcome.retryable and outcome.counts_for_breaker and outcome.attempted
    assert outcome.min_delay == min_delay


def test_breaker_open_and_local_rate_limit_are_retryable_non_attempts():
    for outcome in (errors.breaker_open(5.0), errors.rate_limited(0.5)):
        assert outcome.retryable and not outcome.attempted and not outcome.counts_for_breaker


def test_retry_delay_grows_exponentially_with_jitter_and_stays_capped():
    rng = random.Random(1)
    delays = [errors.retry_delay(n, base=2.0, cap=300.0, rng=rng) for n in range(12)]
    for n, delay in enumerate(delays):
        expected = min(300.0, 2.0 * 2**n)
        assert expected / 2 <= delay <= expected
    assert max(delays) <= 300.0 < 600  # below Celery's countdown ceiling


def test_retry_delay_respects_the_error_minimum_and_the_cap():
    assert errors.retry_delay(0, base=0.2, cap=300.0, min_delay=60.0) == 60.0
    assert errors.retry_delay(0, base=0.2, cap=2.0, min_delay=60.0) == 2.0
