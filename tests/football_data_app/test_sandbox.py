"""The API-Football sandbox: its world, its clock, its scenarios and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from football_data_app.sandbox.world import Plan, generate_world, state_at
from tests.football_data_app.conftest import KEY, scenario, start_football_sandbox

START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def at(plan: Plan, match_minutes: float) -> dict:
    """The plan's state `match_minutes` after kick-off at speed 1 (a match minute a second)."""
    return state_at(plan, plan.kickoff + timedelta(seconds=match_minutes), speed=1.0)


def plan(**fields) -> Plan:
    defaults = {
        "fixture_id": 1,
        "league_id": 39,
        "season": 2026,
        "home": (1, "Home FC"),
        "away": (2, "Away FC"),
        "kickoff": START,
        "goals": [(10, "home"), (50, "away"), (80, "home")],
    }
    return Plan(**{**defaults, **fields})


def test_a_fixture_walks_ns_1h_ht_2h_ft_with_scores_filled_as_the_api_does():
    p = plan()
    assert at(p, -1)["short"] == "NS"
    first = at(p, 20)
    assert (first["short"], first["elapsed"], first["goals"]) == ("1H", 21, {"home": 1, "away": 0})
    assert first["score"]["halftime"] == {"home": None, "away": None}
    half = at(p, 50)
    assert (half["short"], half["score"]["halftime"]) == ("HT", {"home": 1, "away": 0})
    second = at(p, 70)
    assert (second["short"], second["elapsed"], second["goals"]) == (
        "2H",
        56,
        {"home": 1, "away": 1},
    )
    assert second["score"]["fulltime"] == {"home": None, "away": None}
    final = at(p, 200)
    assert final["short"] == "FT"
    assert final["goals"] == final["score"]["fulltime"] == {"home": 2, "away": 1}
    assert final["score"]["extratime"] == {"home": None, "away": None}


def test_a_cup_draw_goes_to_extra_time_then_penalties():
    p = plan(cup=True, goals=[(10, "home"), (70, "away")], penalties=(4, 2))
    assert at(p, 107)["short"] == "BT"
    assert at(p, 120)["short"] == "ET"
    assert at(p, 145)["short"] == "P"
    final = at(p, 200)
    assert final["short"] == "PEN"
    assert final["goals"] == {"home": 1, "away": 1}  # excludes the shoot-out
    assert final["score"]["fulltime"] == {"home": 1, "away": 1}
    assert final["score"]["extratime"] == {"home": 0, "away": 0}
    assert final["score"]["penalty"] == {"home": 4, "away": 2}


def test_a_goal_in_extra_time_ends_aet_with_goals_including_it():
    p = plan(cup=True, goals=[(10, "home"), (70, "away"), (100, "away")])
    final = at(p, 200)
    assert final["short"] == "AET"
    assert final["goals"] == {"home": 1, "away": 2}
    assert final["score"]["fulltime"] == {"home": 1, "away": 1}
    assert final["score"]["extratime"] == {"home": 0, "away": 1}
    assert final["score"]["penalty"] == {"home": None, "away": None}


def test_fates_postponed_cancelled_abandoned():
    assert at(plan(fate="PST"), 50)["short"] == "PST"
    assert at(plan(fate="CANC"), -5)["short"] == "CANC"
    assert at(plan(fate="ABD"), 30)["short"] == "1H"
    abandoned = at(plan(fate="ABD"), 200)
    assert (abandoned["short"], abandoned["goals"]) == ("ABD", {"home": 1, "away": 1})


def test_the_generated_world_is_deterministic_and_has_every_kind_of_fixture():
    one, two = generate_world(seed=11, started_at=START), generate_world(seed=11, started_at=START)
    assert [(p.fixture_id, p.goals, p.fate) for p in one.plans] == [
        (p.fixture_id, p.goals, p.fate) for p in two.plans
    ]
    assert len(one.leagues) == 3 and len(one.plans) == 30
    later = START + timedelta(days=4)
    finals = {state_at(p, later, 1.0)["short"] for p in one.plans}
    assert {"FT", "PST", "CANC", "ABD"} <= finals
    assert finals & {"AET", "PEN"}
    # Some kick off within minutes of the start (the demo watches them finish).
    soon = [p for p in one.plans if timedelta(0) < p.kickoff - START <= timedelta(minutes=5)]
    assert len(soon) >= 4


@pytest.fixture
def live_sandbox(redis_conn):
    handle = start_football_sandbox(speed=60.0)
    yield handle
    handle.server.shutdown()
    handle.server.server_close()


def get(handle, path: str, key: str = KEY, **params) -> requests.Response:
    return requests.get(
        f"{handle.url}{path}", params=params, headers={"x-apisports-key": key}, timeout=5
    )


def test_a_scenario_pins_fixtures_and_scores(live_sandbox):
    body = scenario(
        {
            "id": 501,
            "home": {"id": 11, "name": "Pinned Home"},
            "away": {"id": 12, "name": "Pinned Away"},
            "kickoff": "2026-12-01T15:00:00+00:00",
            "status": "AET",
            "halftime": [0, 1],
            "fulltime": [1, 1],
            "extratime": [1, 0],
        },
        {"id": 502, "kickoff_in_seconds": 3600, "fulltime": [2, 0], "halftime": [1, 0]},
    )
    assert live_sandbox.control("POST", "scenario", body) == {"fixtures": 2, "leagues": 1}
    item = get(live_sandbox, "/fixtures", ids="501-502").json()["response"]
    pinned = next(i for i in item if i["fixture"]["id"] == 501)
    assert pinned["fixture"]["status"]["short"] == "AET"
    assert pinned["goals"] == {"home": 2, "away": 1}
    assert pinned["score"]["fulltime"] == {"home": 1, "away": 1}
    assert pinned["score"]["extratime"] == {"home": 1, "away": 0}
    assert pinned["teams"]["home"]["winner"] is True
    # The other plays out on the clock: advance it past the end.
    live_sandbox.control("POST", "clock", {"advance_seconds": 3600 + 200})
    (later,) = get(live_sandbox, "/fixtures", id="502").json()["response"]
    assert later["fixture"]["status"]["short"] == "FT"
    assert later["score"]["halftime"] == {"home": 1, "away": 0}
    assert later["goals"] == {"home": 2, "away": 0}


def test_a_scenario_file_replaces_the_generated_world(tmp_path, redis_conn):
    import json

    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario({"id": 9, "kickoff_in_seconds": 60})))
    handle = start_football_sandbox(scenario=str(path))
    try:
        fixtures = get(handle, "/fixtures", league=39, season=2026).json()["response"]
        assert [f["fixture"]["id"] for f in fixtures] == [9]
    finally:
        handle.server.shutdown()
        handle.server.server_close()


def test_the_key_is_checked_and_answered_like_the_api(live_sandbox):
    answer = get(live_sandbox, "/leagues", key="nope")
    assert answer.status_code == 200
    assert "token" in answer.json()["errors"]
    assert answer.json()["response"] == []


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"league": "39"}, "season"),  # fixtures of a league need the season
        ({"foo": "1"}, "foo"),
        ({"ids": "-".join(str(i) for i in range(1, 22))}, "ids"),
        ({"timezone": "UTC"}, "required"),
        ({"league": "x", "season": "2026"}, "league"),
    ],
)
def test_bad_parameters_are_refused_in_errors(live_sandbox, params, error):
    body = get(live_sandbox, "/fixtures", **params).json()
    assert error in body["errors"]


def test_live_and_status_filters(live_sandbox):
    live_sandbox.control("POST", "clock", {"advance_seconds": 86400 * 3})
    finished = get(live_sandbox, "/fixtures", league=39, season=2026, status="FT-AET-PEN")
    statuses = {i["fixture"]["status"]["short"] for i in finished.json()["response"]}
    assert statuses and statuses <= {"FT", "AET", "PEN"}
    assert get(live_sandbox, "/fixtures", live="all").json()["response"] == []


def test_odds_drift_between_periods_and_filter_by_bet(live_sandbox):
    live_sandbox.control("POST", "config", {"odds_period_seconds": 60})
    first = get(live_sandbox, "/odds", league=39, season=2026, bet=1).json()["response"][0]
    bets = first["bookmakers"][0]["bets"]
    assert [b["name"] for b in bets] == ["Match Winner"]
    live_sandbox.control("POST", "clock", {"advance_seconds": 120})
    again = get(live_sandbox, "/odds", fixture=first["fixture"]["id"], bet=1).json()["response"]
    assert again[0]["update"] != first["update"]
    assert again[0]["bookmakers"][0]["bets"] != bets
    names = {b["name"] for b in get(live_sandbox, "/odds/bets").json()["response"]}
    assert {"Match Winner", "Asian Handicap", "Goals Over/Under", "Both Teams Score"} <= names


def test_run_sandboxes_serves_it_from_settings(settings, redis_conn):
    from importlib import import_module

    (entry,) = [e for e in settings.SANDBOX_SERVERS if e[0].startswith("football_data_app")]
    assert entry[2] == settings.APIFOOTBALL_SANDBOX_PORT == 8200
    module_name, _, attribute = entry[0].rpartition(".")
    server = getattr(import_module(module_name), attribute)("127.0.0.1", 0)
    try:
        assert len(server.sandbox.world.plans) == 30
    finally:
        server.server_close()
