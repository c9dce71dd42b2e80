"""Ingestion tasks: run guards, the fan-out launched once per run, scores -> settlement.

The first tests call the task functions in this process against the live sandbox and record
publishes at the one broker point (`published`); the last runs a real worker on the
`football_data` queue to show one failed league does not stop the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_redis import get_redis_connection

from football_data_app.models import ApiCallLog, Fixture, League, Outcome
from football_data_app.tasks import ingestion as tasks
from tests.conftest import wait_for
from tests.football_data_app.conftest import KEY, scenario, start_football_sandbox
from tests.football_data_app.factories import make_1x2, make_fixture, make_league
from whatsappcrm_backend import publishing
from whatsappcrm_backend.publishing import publish


@dataclass
class Published:
    calls: list[tuple[str, list[Any]]]

    def of(self, name: str) -> list[list[Any]]:
        return [args for n, args in self.calls if n == name]


@pytest.fixture
def published(monkeypatch) -> Published:
    record = Published(calls=[])

    def send_task(name: str, args: list[Any] | None = None, **options: Any) -> None:
        record.calls.append((name, list(args or [])))

    monkeypatch.setattr(publishing.app, "send_task", send_task)
    return record


def activate_sandbox_leagues(handle) -> list[League]:
    season = handle.app.world.season
    return [make_league(api_id=x["id"], season=season) for x in handle.app.world.leagues]


@pytest.mark.django_db
def test_full_update_runs_once_at_a_time_and_launches_its_fan_out(football_sandbox, published):
    summary = tasks.run_apifootball_full_update_task()
    assert summary["leagues"]["leagues"] == 3
    assert League.objects.count() == 3 and not League.objects.filter(active=True).exists()
    assert published.of("_prepare_and_launch_event_odds_chord") == [[summary["run_id"]]]
    # A second beat, or a run-now, while that run's fan-out is in flight: nothing twice.
    again = tasks.run_apifootball_full_update_task()
    assert again == {"skipped": True, "running": summary["run_id"]}
    assert len(published.of("_prepare_and_launch_event_odds_chord")) == 1


@pytest.mark.django_db
def test_an_overlapping_scheduled_run_is_skipped(redis_conn, published):
    lock = get_redis_connection("default").lock("lock:run_score_and_settlement_task", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert tasks.run_score_and_settlement_task() == {"skipped": True}
    finally:
        lock.release()
    assert published.calls == []


@pytest.mark.django_db
def test_the_fan_out_is_never_launched_twice_for_one_run(football_sandbox, published):
    leagues = activate_sandbox_leagues(football_sandbox)
    run_id = "run-1"
    assert tasks._prepare_and_launch_event_odds_chord(run_id)["leagues"] == 3
    assert tasks._prepare_and_launch_event_odds_chord(run_id) == {"run_id": run_id, "skipped": True}
    events = published.of("fetch_events_for_league_task")
    assert sorted(args[0] for args in events) == sorted(x.pk for x in leagues)

    # Each league answers; a redelivered answer counts once; the last one opens the odds.
    for league in leagues:
        tasks.fetch_events_for_league_task(league.pk, run_id)
    tasks.fetch_events_for_league_task(leagues[0].pk, run_id)  # redelivered
    assert published.of("dispatch_odds_fetching_after_events_task") == [[run_id]]

    first = tasks.dispatch_odds_fetching_after_events_task(run_id)
    assert first["fixtures"] > 0
    assert tasks.dispatch_odds_fetching_after_events_task(run_id)["skipped"] is True
    odds = published.of("fetch_odds_for_single_event_task")
    assert len(odds) == first["fixtures"] == len({args[0] for args in odds})


@pytest.mark.django_db
def test_a_failed_league_is_counted_so_the_others_odds_go_ahead(football_sandbox, published):
    leagues = activate_sandbox_leagues(football_sandbox)
    run_id = "run-2"
    tasks._prepare_and_launch_event_odds_chord(run_id)
    football_sandbox.fault(
        "plan", path="/fixtures", params={"league": leagues[1].api_id}, times=None
    )
    results = [tasks.fetch_events_for_league_task(league.pk, run_id) for league in leagues]
    assert results[1]["error"] == "plan"  # permanent: given up at once, not retried
    assert published.of("dispatch_odds_fetching_after_events_task") == [[run_id]]
    dispatched = tasks.dispatch_odds_fetching_after_events_task(run_id)
    assert dispatched["failed_leagues"] == [leagues[1].pk]
    fanned = {args[0] for args in published.of("fetch_odds_for_single_event_task")}
    assert fanned and not Fixture.objects.filter(pk__in=fanned, league=leagues[1]).exists()
    error = ApiCallLog.objects.get(error_kind="plan")
    assert error.params == {"league": leagues[1].api_id, "season": leagues[1].season}


@pytest.mark.django_db
def test_odds_task_fills_markets_of_an_upcoming_fixture(football_sandbox, published):
    (league, *_) = activate_sandbox_leagues(football_sandbox)
    tasks.fetch_events_for_league_task(league.pk)  # on its own (admin): its odds follow
    ((run_id, league_ids),) = published.of("dispatch_odds_fetching_after_events_task")
    assert run_id.startswith("single-") and league_ids == [league.pk]
    fixture = Fixture.objects.filter(league=league, status="NS").order_by("kickoff").last()
    result = tasks.fetch_odds_for_single_event_task(fixture.pk)
    assert result["markets"] == 6
    labels = set(Outcome.objects.filter(market__fixture=fixture).values_list("label", flat=True))
    assert {"Home", "Draw", "Away", "Over 2.25", "Under 3", "Home -0.75", "Yes"} <= labels


@pytest.mark.django_db
def test_scores_then_settlement_of_final_fixtures(
    football_sandbox, published, django_capture_on_commit_callbacks
):
    body = scenario(
        {"id": 701, "kickoff_in_seconds": -600, "status": "1H", "halftime": [0, 0]},
        {"id": 702, "kickoff_in_seconds": -4000, "status": "2H", "halftime": [1, 0]},
        {"id": 703, "kickoff_in_seconds": 86400},
    )
    football_sandbox.control("POST", "scenario", body)
    league = make_league(api_id=39, season=2026)
    tasks.fetch_events_for_league_task(league.pk)
    for fixture in Fixture.objects.all():
        make_1x2(fixture)
    # 701 finishes, 702 is abandoned; 703 is not due (and not asked for).
    body["fixtures"][0].update(status="FT", fulltime=[2, 2])
    body["fixtures"][1].update(status="ABD")
    football_sandbox.control("POST", "scenario", body)
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.fetch_scores_for_league_task(league.pk)
    assert result["settlements"] == 2
    ids = sorted(Fixture.objects.filter(api_id__in=[701, 702]).values_list("pk", flat=True))
    assert sorted(args[0] for args in published.of("settle_fixture_pipeline_task")) == ids
    (call,) = football_sandbox.requests_to("/fixtures")[-1:]
    assert sorted(call["params"]["ids"].split("-")) == ["701", "702"]  # 703 is not due
    # The scheduled run: scores for each active league, settlement for what is due.
    with django_capture_on_commit_callbacks(execute=True):
        summary = tasks.run_score_and_settlement_task()
    assert summary == {"leagues": 1, "settlements": 2}
    assert len(published.of("settle_fixture_pipeline_task")) == 4
    assert published.of("fetch_scores_for_league_task") == [[league.pk]]


@pytest.mark.django_db
def test_postponed_fixture_is_due_only_after_the_void_deadline(settings):
    settings.FOOTBALL_POSTPONED_VOID_HOURS = 48
    now = timezone.now()
    recent = make_fixture(status="PST", postponed_at=now - timedelta(hours=2))
    old = make_fixture(status="PST", postponed_at=now - timedelta(hours=49))
    finished = make_fixture(status="FT")
    no_markets = make_fixture(status="FT")
    settled = make_fixture(status="FT", outcomes_settled_at=now)
    for fixture in (recent, old, finished, settled):
        make_1x2(fixture)
    due = tasks.fixtures_due_for_settlement(now)
    assert set(due) == {old.pk, finished.pk}
    assert no_markets.pk not in due


@pytest.mark.worker
def test_one_failed_league_while_the_others_complete_on_a_real_worker(celery_worker_factory):
    handle = start_football_sandbox()
    try:
        season = handle.app.world.season
        ok, broken, flaky = (make_league(api_id=api_id, season=season) for api_id in (39, 140, 2))
        handle.fault("plan", path="/fixtures", params={"league": 140}, times=None)
        handle.fault("rateLimit", path="/fixtures", params={"league": 2}, times=1)
        celery_worker_factory(
            queues="football_data",
            concurrency=1,
            env={
                "APIFOOTBALL_BASE_URL": handle.url,
                "APIFOOTBALL_KEY": KEY,
                "APIFOOTBALL_RATE_LIMIT_RETRY_SECONDS": "1",
                "APIFOOTBALL_REQUESTS_PER_MINUTE": "6000",
            },
        )
        publish("run_apifootball_full_update_task")

        def odds_for(league: League) -> bool:
            upcoming = Fixture.objects.filter(
                league=league, status="NS", kickoff__gt=timezone.now()
            )
            return upcoming.exists() and not upcoming.filter(markets__isnull=True).exists()

        wait_for(lambda: odds_for(ok) and odds_for(flaky), timeout=150, interval=0.5)
        # The permanent failure: asked once, never retried, recorded for the admin.
        assert not Fixture.objects.filter(league=broken).exists()
        assert (
            len([r for r in handle.requests_to("/fixtures") if r["params"].get("league") == "140"])
            == 1
        )
        assert ApiCallLog.objects.filter(error_kind="plan", endpoint="/fixtures").count() == 1
        # The rate-limited league was retried by Celery and then fanned out its own odds.
        assert (
            len([r for r in handle.requests_to("/fixtures") if r["params"].get("league") == "2"])
            == 2
        )
        assert ApiCallLog.objects.filter(error_kind="rateLimit").count() == 1
    finally:
        handle.server.shutdown()
        handle.server.server_close()


@pytest.mark.django_db
@pytest.mark.parametrize("reachable", [True, False])
def test_demo_activates_the_sandbox_leagues_and_publishes_a_full_update(
    settings, redis_conn, published, django_capture_on_commit_callbacks, reachable
):
    from football_data_app.demo import load_demo

    settings.SANDBOX = True
    settings.APIFOOTBALL_SANDBOX_SCENARIO = ""
    handle = start_football_sandbox() if reachable else None
    # Unreachable: bootstrap_demo runs before `run_sandboxes` has started.
    settings.APIFOOTBALL_BASE_URL = handle.url if handle else "http://127.0.0.1:9"
    settings.APIFOOTBALL_KEY = KEY
    try:
        with django_capture_on_commit_callbacks(execute=True):
            summary = load_demo()
    finally:
        if handle:
            handle.server.shutdown()
            handle.server.server_close()
    assert summary["activated"] == 3
    assert set(League.objects.filter(active=True).values_list("api_id", flat=True)) == {
        39,
        140,
        2,
    }
    assert published.of("run_apifootball_full_update_task") == [[]]
    with django_capture_on_commit_callbacks(execute=True):
        assert load_demo()["activated"] == 0  # idempotent


@pytest.mark.worker
def test_a_fixture_finishing_in_the_sandbox_is_scored_and_settled_by_a_real_worker(
    celery_worker_factory,
):
    handle = start_football_sandbox(speed=60.0)
    try:
        league = make_league(api_id=39, season=2026)
        celery_worker_factory(
            queues="football_data",
            concurrency=1,
            env={
                "APIFOOTBALL_BASE_URL": handle.url,
                "APIFOOTBALL_KEY": KEY,
                "APIFOOTBALL_REQUESTS_PER_MINUTE": "6000",
            },
        )
        handle.control(
            "POST",
            "scenario",
            scenario({"id": 801, "kickoff_in_seconds": 20, "halftime": [1, 0], "fulltime": [2, 1]}),
        )
        publish("run_apifootball_full_update_task")
        wait_for(
            lambda: Outcome.objects.filter(market__fixture__api_id=801, label="Home").exists(),
            timeout=60,
            interval=0.5,
        )
        wait_for(lambda: handle.state()["fixtures"][0]["status"] == "FT", timeout=60, interval=0.5)
        publish("run_score_and_settlement_task")
        fixture = wait_for(
            lambda: Fixture.objects.filter(
                api_id=801, status="FT", outcomes_settled_at__isnull=False
            ).first(),
            timeout=60,
            interval=0.5,
        )
        assert (fixture.fulltime_home, fixture.fulltime_away, fixture.halftime_home) == (2, 1, 1)
        assert fixture.league_id == league.pk
        results = dict(
            Outcome.objects.filter(
                market__fixture=fixture, market__bet_type__name="Match Winner"
            ).values_list("label", "result")
        )
        assert results == {"Home": "won", "Draw": "lost", "Away": "lost"}
    finally:
        handle.server.shutdown()
        handle.server.server_close()


@pytest.mark.django_db
def test_schedules_are_declared_routed_and_installed():
    from django_celery_beat.models import PeriodicTask

    from football_data_app.schedules import SCHEDULES
    from whatsappcrm_backend.celery import TASK_ROUTES
    from whatsappcrm_backend.schedules import install_schedules

    names = {entry["task"] for entry in SCHEDULES}
    assert names == {
        "run_apifootball_full_update_task",
        "run_score_and_settlement_task",
        "reconcile_and_settle_pending_items_task",
    }
    assert {TASK_ROUTES[name]["queue"] for name in names} == {"football_data"}
    install_schedules()
    installed = PeriodicTask.objects.filter(task__in=names)
    assert {task.queue for task in installed} == {"football_data"}
    assert installed.count() == 3
