"""The client: envelope rules (pure), then its contract against the live sandbox over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from requests.structures import CaseInsensitiveDict

from football_data_app import apifootball
from football_data_app.apifootball import (
    ApiFootballClient,
    MalformedResponse,
    PermanentApiError,
    RetryableApiError,
    chunked,
    parse_envelope,
    read_quota,
    seconds_to_next_utc_day,
)
from football_data_app.models import ApiCallLog
from football_data_app.parsing import BadItem, line_of, parse_fixture, parse_leagues, parse_odds

OK = (
    '{"get":"x","parameters":{},"errors":[],"results":1,"paging":{"current":1,"total":3},'
    '"response":[1]}'
)


def env(errors: str, status: int = 200) -> tuple[int, str]:
    return status, f'{{"errors":{errors},"results":0,"paging":{{}},"response":[]}}'


# --- the envelope, pure --------------------------------------------------------------------------
def test_success_envelope_reads_paging_and_both_quota_families():
    headers = CaseInsensitiveDict(
        {
            "x-ratelimit-requests-limit": "7500",
            "x-ratelimit-requests-remaining": "7000",
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "299",
        }
    )
    envelope = parse_envelope(200, OK, headers)
    assert envelope.response == [1]
    assert (envelope.page, envelope.total_pages) == (1, 3)
    assert envelope.quota == apifootball.Quota(7500, 7000, 300, 299)


@pytest.mark.parametrize(
    ("errors", "exception", "kind"),
    [
        ('{"rateLimit":"Too many requests."}', RetryableApiError, "rateLimit"),
        ('[{"rateLimit":"Too many requests."}]', RetryableApiError, "rateLimit"),
        (
            '{"requests":"You have reached the request limit for the day"}',
            PermanentApiError,
            "requests",
        ),
        ('[{"requests":"limit for the day"}]', PermanentApiError, "requests"),
        ('{"token":"Error/Missing application key."}', PermanentApiError, "token"),
        ('{"plan":"Free plans do not have access to this season"}', PermanentApiError, "plan"),
        ('{"fixture":"The Fixture field must contain an integer."}', PermanentApiError, "fixture"),
        ('["something odd"]', PermanentApiError, "unknown"),
    ],
)
def test_errors_as_object_or_list_raise_by_kind_even_with_http_200(errors, exception, kind):
    with pytest.raises(exception) as caught:
        parse_envelope(*env(errors), CaseInsensitiveDict())
    assert caught.value.kind == kind
    assert caught.value.http_status == 200


@pytest.mark.parametrize("errors", ["[]", "{}"])
def test_empty_errors_list_or_object_is_success(errors):
    assert parse_envelope(*env(errors), CaseInsensitiveDict()).response == []


def test_http_429_is_retryable_after_retry_after_or_a_minute():
    with pytest.raises(RetryableApiError) as caught:
        parse_envelope(429, "", CaseInsensitiveDict({"Retry-After": "17"}))
    assert caught.value.retry_after == 17
    with pytest.raises(RetryableApiError) as caught:
        parse_envelope(429, "", CaseInsensitiveDict(), retry_seconds=60)
    assert caught.value.retry_after == 60


@pytest.mark.parametrize(
    "text",
    [
        "<html>502</html>",
        '{"errors":',
        "[1, 2]",
        '{"errors":[],"response":{"a":1}}',
        '{"errors":[]}',
    ],
)
def test_malformed_bodies_raise_a_clear_error(text):
    with pytest.raises(MalformedResponse, match=r"not JSON|not a JSON object|response"):
        parse_envelope(200, text, CaseInsensitiveDict())


def test_ids_are_chunked_by_twenty():
    chunks = list(chunked(range(45)))
    assert [len(c) for c in chunks] == [20, 20, 5]
    assert chunks[2] == [40, 41, 42, 43, 44]


def test_daily_pause_lasts_until_the_next_utc_day():
    now = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    assert seconds_to_next_utc_day(now) == 3600


def test_quota_headers_missing_or_garbage_are_none():
    assert read_quota(CaseInsensitiveDict({"X-RateLimit-Remaining": "x"})) == apifootball.Quota()


# --- parsing, pure --------------------------------------------------------------------------------
FIXTURE = {
    "fixture": {
        "id": 979139,
        "date": "2022-12-18T15:00:00+00:00",
        "status": {"long": "Match Finished", "short": "PEN", "elapsed": 120},
    },
    "league": {"id": 1, "season": 2022, "round": "Final"},
    "teams": {"home": {"id": 26, "name": "Argentina"}, "away": {"id": 2, "name": "France"}},
    "goals": {"home": 3, "away": 3},
    "score": {
        "halftime": {"home": 2, "away": 0},
        "fulltime": {"home": 2, "away": 2},
        "extratime": {"home": 1, "away": 1},
        "penalty": {"home": 4, "away": 2},
    },
}


def test_parse_fixture_keeps_every_score_part():
    parsed = parse_fixture(FIXTURE)
    assert parsed.status == "PEN"
    assert parsed.goals == (3, 3)
    assert parsed.fulltime == (2, 2)
    assert parsed.extratime == (1, 1)
    assert parsed.penalty == (4, 2)
    assert parsed.kickoff == datetime(2022, 12, 18, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {**FIXTURE, "fixture": {**FIXTURE["fixture"], "status": {}}},
        {**FIXTURE, "fixture": {**FIXTURE["fixture"], "date": "yesterday"}},
        {**FIXTURE, "goals": {"home": "three", "away": 3}},
        {**FIXTURE, "teams": {"home": None, "away": {"id": 2}}},
    ],
)
def test_parse_fixture_rejects_broken_items(broken):
    with pytest.raises(BadItem):
        parse_fixture(broken)


def test_parse_odds_reads_string_odds_as_decimal_and_drops_nonsense():
    parsed = parse_odds(
        {
            "fixture": {"id": 5},
            "update": "2026-12-02T10:00:00+00:00",
            "bookmakers": [
                {
                    "id": 8,
                    "name": "Bet365",
                    "bets": [
                        {
                            "id": 5,
                            "name": "Goals Over/Under",
                            "values": [
                                {"value": "Over 2.25", "odd": "1.85"},
                                {"value": "Under 2.25", "odd": "n/a"},
                                {"value": "Over 9", "odd": "1.00"},
                            ],
                        }
                    ],
                }
            ],
        }
    )
    (price,) = parsed.bookmakers[0].bets[0].prices
    assert price.odds == Decimal("1.850")
    assert price.line == Decimal("2.25")


def test_line_of_labels():
    assert line_of("Home -0.25") == Decimal("-0.25")
    assert line_of("Away +1") == Decimal("1")
    assert line_of("Home") is None
    assert line_of("Home/Draw") is None


def test_parse_leagues_takes_the_current_season():
    item = {
        "league": {"id": 39, "name": "Premier League"},
        "country": {"name": "England"},
        "seasons": [{"year": 2025, "current": False}, {"year": 2026, "current": True}],
    }
    assert [x.season for x in parse_leagues(item)] == [2026]
    assert [x.season for x in parse_leagues(item, season=2025)] == [2025]


# --- the contract, over HTTP against the sandbox -------------------------------------------------


@pytest.mark.django_db
def test_only_the_key_header_is_sent_and_quota_is_recorded(football_sandbox):
    leagues = ApiFootballClient().leagues(current="true")
    assert {item["league"]["id"] for item in leagues} == {39, 140, 2}
    (call,) = football_sandbox.requests_to("/leagues")
    assert "x-apisports-key" in call["headers"]
    assert "content-type" not in call["headers"]
    log = ApiCallLog.objects.get(endpoint="/leagues")
    assert log.error_kind == ""
    assert log.requests_remaining == 75000 - 1
    assert log.minute_remaining == 300 - 1


@pytest.mark.django_db
@pytest.mark.parametrize("status", [200, 429])
def test_rate_limit_error_is_retryable_and_pauses_every_worker(football_sandbox, status):
    football_sandbox.fault("rateLimit", status=status)
    with pytest.raises(RetryableApiError) as caught:
        ApiFootballClient().fixtures(league=39, season=2026)
    assert caught.value.kind == "rateLimit"
    assert 50 <= caught.value.retry_after <= 60
    # Another worker (a fresh client) does not even call while the pause lasts.
    calls_before = len(football_sandbox.requests_to("/fixtures"))
    with pytest.raises(RetryableApiError, match="paused"):
        ApiFootballClient().fixtures(league=39, season=2026)
    assert len(football_sandbox.requests_to("/fixtures")) == calls_before
    assert ApiCallLog.objects.get(error_kind="rateLimit").http_status == status


@pytest.mark.django_db
@pytest.mark.parametrize("form", ["object", "list"])
@pytest.mark.parametrize("kind", ["requests", "plan", "token"])
def test_permanent_errors_raise_permanent_and_are_recorded(football_sandbox, kind, form):
    football_sandbox.fault(kind, form=form)
    with pytest.raises(PermanentApiError) as caught:
        ApiFootballClient().fixtures(league=39, season=2026)
    assert caught.value.kind == kind
    log = ApiCallLog.objects.get(error_kind=kind)
    assert log.endpoint == "/fixtures"
    assert log.params == {"league": 39, "season": 2026}
    assert log.error_message


@pytest.mark.django_db
def test_a_wrong_key_is_a_token_error_with_http_200(football_sandbox):
    with pytest.raises(PermanentApiError) as caught:
        ApiFootballClient(key="wrong").leagues()
    assert (caught.value.kind, caught.value.http_status) == ("token", 200)


@pytest.mark.django_db
def test_daily_quota_used_up_stops_all_calls_until_the_next_day(football_sandbox):
    football_sandbox.control("POST", "config", {"per_day": 2})
    client = ApiFootballClient()
    client.bets()
    client.bookmakers()  # the headers now say 0 left today
    calls = football_sandbox.app.counters["requests"]
    with pytest.raises(PermanentApiError) as caught:
        client.leagues()
    assert caught.value.kind == "requests"
    assert football_sandbox.app.counters["requests"] == calls  # not even asked
    assert apifootball.paused_for(apifootball.DAILY_KEY) > 60


@pytest.mark.django_db
def test_a_used_up_minute_in_the_headers_pauses_the_next_call(football_sandbox):
    football_sandbox.control("POST", "config", {"per_minute": 1})
    client = ApiFootballClient()
    client.bets()  # X-RateLimit-Remaining: 0
    with pytest.raises(RetryableApiError, match="paused"):
        client.bookmakers()
    assert len(football_sandbox.requests_to("/odds/bookmakers")) == 0


@pytest.mark.django_db
def test_the_sandbox_minute_limit_answers_rate_limit_when_headers_are_ignored(football_sandbox):
    football_sandbox.control("POST", "config", {"per_minute": 1, "rate_limit_status": 429})
    client = ApiFootballClient()
    client.bets()
    apifootball._redis().delete(apifootball.PAUSE_KEY)  # as if the header was not honoured
    with pytest.raises(RetryableApiError) as caught:
        client.bets()
    assert caught.value.http_status == 429


@pytest.mark.django_db
def test_malformed_and_5xx_answers_are_retryable_errors(football_sandbox):
    football_sandbox.fault("malformed")
    with pytest.raises(MalformedResponse, match="not JSON"):
        ApiFootballClient().bets()
    football_sandbox.fault("http", status=502)
    with pytest.raises(RetryableApiError) as caught:
        ApiFootballClient().bets()
    assert caught.value.http_status == 502
    assert set(ApiCallLog.objects.values_list("error_kind", flat=True)) == {"malformed", "http"}


@pytest.mark.django_db
def test_odds_are_read_page_by_page(football_sandbox):
    odds = ApiFootballClient().odds(league=39, season=football_sandbox.app.world.season)
    assert len(odds) == 10
    odds_all = []
    for league in (39, 140, 2):
        odds_all += ApiFootballClient().odds(league=league, season=2026, bookmaker=8)
    assert len({o["fixture"]["id"] for o in odds_all}) == 30
    # Pages hold 10 fixtures: a scenario league of 23 takes three pages.
    football_sandbox.control(
        "POST",
        "scenario",
        {
            "fixtures": [
                {"id": 100 + i, "league": 39, "kickoff_in_seconds": 3600} for i in range(23)
            ]
        },
    )
    paged = ApiFootballClient().odds(league=39, season=football_sandbox.app.world.season)
    assert len(paged) == 23
    pages = [r["params"].get("page") for r in football_sandbox.requests_to("/odds")][-3:]
    assert pages == [None, "2", "3"]


@pytest.mark.django_db
def test_fixtures_by_ids_are_sent_twenty_at_a_time(football_sandbox):
    ids = [p.fixture_id for p in football_sandbox.app.world.plans]  # 30 fixtures
    items = ApiFootballClient().fixtures_by_ids(ids)
    assert sorted(i["fixture"]["id"] for i in items) == sorted(ids)
    sent = [r["params"]["ids"].split("-") for r in football_sandbox.requests_to("/fixtures")]
    assert [len(chunk) for chunk in sent] == [20, 10]


@pytest.mark.django_db
def test_the_shared_pace_spaces_calls_across_clients(football_sandbox, settings):
    settings.APIFOOTBALL_REQUESTS_PER_MINUTE = 600  # one call per 0.1 s, all workers together
    settings.APIFOOTBALL_RATE_LIMIT_MAX_WAIT_SECONDS = 0.25
    clients = [ApiFootballClient(), ApiFootballClient()]
    started = time.monotonic()
    for n in range(4):
        clients[n % 2].bets()
    assert time.monotonic() - started >= 0.28  # 4 slots 0.1 s apart
    # A caller that would wait longer than its maximum is told to retry instead of sleeping.
    settings.APIFOOTBALL_REQUESTS_PER_MINUTE = 6
    settings.APIFOOTBALL_RATE_LIMIT_MAX_WAIT_SECONDS = 0.0
    apifootball._redis().delete(apifootball.PACE_KEY)
    clients[0].bets()
    with pytest.raises(RetryableApiError) as caught:
        clients[1].bets()
    assert caught.value.kind == "pace"
    assert 5 < caught.value.retry_after <= 10
