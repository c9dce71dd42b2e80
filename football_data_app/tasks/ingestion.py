"""Ingestion tasks: leagues, fixtures, odds, scores (API-Football). Thin: ids in, one service.

A full update is a run with an id: leagues, then one events task per active league, then
(once every league has answered, failed or not) one odds task per upcoming fixture. The
barrier is a Redis counter with a set of the leagues already counted, so a retried or
redelivered league task counts once and a failed league never holds the others back; a league
that succeeds on a later retry fans out its own fixtures' odds. Every fan-out is claimed with
SET NX on (run id, scope), so it is launched once per run whatever is redelivered.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_redis import get_redis_connection

from football_data_app.apifootball import ApiFootballError
from football_data_app.models import Fixture, FixtureStatus, League, Market
from football_data_app.selectors import active_leagues
from football_data_app.services import ingestion
from whatsappcrm_backend.celery import FOOTBALL_QUEUE, MAX_COUNTDOWN_SECONDS
from whatsappcrm_backend.locks import single_run
from whatsappcrm_backend.publishing import publish, publish_on_commit

logger = logging.getLogger(__name__)

RUN_KEY = "wcrm:football:full_update:current"
RUN_TTL = 3600  # a run's keys outlive any sane run, then vanish
RUN_HOLD_SECONDS = 900  # a run whose barrier never completes stops blocking the next after this
API_RETRIES = 3
SETTLE_TASK = "settle_fixture_pipeline_task"  # F-BET's pipeline, published by name

_LEAGUE_DONE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return redis.call('DECR', KEYS[2])
end
return -1
"""
_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _redis():
    return get_redis_connection("default")


def _key(run_id: str, part: str) -> str:
    return f"wcrm:football:run:{run_id}:{part}"


def claim(run_id: str, part: str) -> bool:
    """True exactly once per (run, part): the guard against a second fan-out."""
    return bool(_redis().set(_key(run_id, part), "1", nx=True, ex=RUN_TTL))


def _countdown(exc: ApiFootballError, retries: int) -> float:
    base = getattr(exc, "retry_after", 30.0)
    return min(float(MAX_COUNTDOWN_SECONDS), max(1.0, base) * (1 + retries * 0.5))


def _retry_or_give_up(task, exc: ApiFootballError, **context: Any) -> dict[str, Any]:
    """Retry a retryable failure (Celery countdown); give up on a permanent one, recorded."""
    if exc.retryable and task.request.retries < task.max_retries:
        logger.warning("%s %s: %s; retrying", task.name, context, exc)
        raise task.retry(exc=exc, countdown=_countdown(exc, task.request.retries))
    logger.error("%s %s gave up: %s", task.name, context, exc)
    return {**context, "error": exc.kind, "message": exc.message}


def publish_settlements(api_ids: list[int]) -> int:
    """Publish F-BET's pipeline for fixtures that just became final or void (not PST)."""
    pks = list(
        Fixture.objects.filter(
            Exists(Market.objects.filter(fixture=OuterRef("pk"))),  # no markets, no legs
            api_id__in=api_ids,
            status__in=FixtureStatus.FINISHED | FixtureStatus.VOID,
        ).values_list("pk", flat=True)
    )
    for pk in pks:
        publish_on_commit(SETTLE_TASK, pk)
    return len(pks)


# --- full update ----------------------------------------------------------------------------------
@shared_task(
    queue=FOOTBALL_QUEUE,
    name="run_apifootball_full_update_task",
    soft_time_limit=120,
    time_limit=150,
    ignore_result=False,
)
@single_run("run_apifootball_full_update_task", timeout=150)
def run_apifootball_full_update_task() -> dict[str, Any]:
    """Scheduled: catalogue the leagues, then launch the events -> odds fan-out of one run."""
    run_id = uuid.uuid4().hex
    conn = _redis()
    if not conn.set(RUN_KEY, run_id, nx=True, ex=RUN_HOLD_SECONDS):
        running = conn.get(RUN_KEY)
        return {"skipped": True, "running": running.decode() if running else None}
    summary: dict[str, Any] = {"run_id": run_id}
    try:
        summary["leagues"] = ingestion.refresh_leagues()
    except ApiFootballError as exc:
        # The fixtures of leagues already active can still be refreshed.
        logger.error("full update %s: leagues failed: %s", run_id, exc)
        summary["leagues"] = {"error": exc.kind, "message": exc.message}
    except BaseException:
        conn.eval(_RELEASE_IF_OWNER, 1, RUN_KEY, run_id)  # a crash must not block the next run
        raise
    if not publish("_prepare_and_launch_event_odds_chord", run_id):
        conn.eval(_RELEASE_IF_OWNER, 1, RUN_KEY, run_id)
        summary["error"] = "broker refused the fan-out; the next run retries"
    return summary


@shared_task(
    queue=FOOTBALL_QUEUE,
    bind=True,
    name="fetch_and_update_leagues_task",
    max_retries=API_RETRIES,
    soft_time_limit=120,
    time_limit=150,
)
def fetch_and_update_leagues_task(self) -> dict[str, Any]:
    try:
        return ingestion.refresh_leagues()
    except ApiFootballError as exc:
        return _retry_or_give_up(self, exc)


@shared_task(
    queue=FOOTBALL_QUEUE,
    name="_prepare_and_launch_event_odds_chord",
    soft_time_limit=60,
    time_limit=75,
)
def _prepare_and_launch_event_odds_chord(run_id: str) -> dict[str, Any]:
    """One events task per active league; the odds fan-out follows when all have answered."""
    if not claim(run_id, "events"):
        return {"run_id": run_id, "skipped": True}
    league_ids = list(active_leagues().values_list("pk", flat=True))
    if not league_ids:
        publish("dispatch_odds_fetching_after_events_task", run_id)
        return {"run_id": run_id, "leagues": 0}
    _redis().set(_key(run_id, "pending"), len(league_ids), ex=RUN_TTL)
    for league_id in league_ids:
        publish("fetch_events_for_league_task", league_id, run_id)
    return {"run_id": run_id, "leagues": len(league_ids)}


def league_answered(run_id: str, league_id: int, *, failed: bool) -> tuple[int, bool]:
    """Count a league once per run: (leagues still pending or -1 if counted before, whether
    it had failed earlier in this run). The last league to answer opens the odds fan-out."""
    conn = _redis()
    failed_key = _key(run_id, "failed")
    if failed:
        was_failed = not conn.sadd(failed_key, league_id)
        conn.expire(failed_key, RUN_TTL)
    else:
        was_failed = bool(conn.srem(failed_key, league_id))
    left = int(
        conn.eval(
            _LEAGUE_DONE, 2, _key(run_id, "answered"), _key(run_id, "pending"), league_id, RUN_TTL
        )
    )
    if left == 0:
        publish("dispatch_odds_fetching_after_events_task", run_id)
    return left, was_failed


@shared_task(
    queue=FOOTBALL_QUEUE,
    bind=True,
    name="fetch_events_for_league_task",
    max_retries=API_RETRIES,
    soft_time_limit=90,
    time_limit=110,
)
def fetch_events_for_league_task(self, league_id: int, run_id: str | None = None) -> dict:
    try:
        result = ingestion.fetch_league_fixtures(league_id=league_id)
    except League.DoesNotExist:
        if run_id:
            league_answered(run_id, league_id, failed=True)
        return {"league_id": league_id, "error": "missing"}
    except ApiFootballError as exc:
        # Counted as answered before retrying: the other leagues' odds do not wait for us.
        if run_id:
            league_answered(run_id, league_id, failed=True)
        return _retry_or_give_up(self, exc, league_id=league_id, run_id=run_id)
    publish_settlements(result.pop("newly_settleable"))
    if not run_id:
        # On its own (the admin's "fetch now"): this league's odds follow, once per task id.
        run_id = f"single-{self.request.id or uuid.uuid4().hex}"
        publish("dispatch_odds_fetching_after_events_task", run_id, [league_id])
    else:
        left, was_failed = league_answered(run_id, league_id, failed=False)
        if left == -1 and was_failed:
            # A retry that succeeded after the run moved on: this league's odds on their own
            # (a redelivered success was never failed, and fans out nothing).
            publish("dispatch_odds_fetching_after_events_task", run_id, [league_id])
    return {"league_id": league_id, **result}


@shared_task(
    queue=FOOTBALL_QUEUE,
    name="dispatch_odds_fetching_after_events_task",
    soft_time_limit=60,
    time_limit=75,
)
def dispatch_odds_fetching_after_events_task(
    run_id: str, league_ids: list[int] | None = None
) -> dict[str, Any]:
    scope = "odds:" + ("all" if not league_ids else "-".join(map(str, sorted(league_ids))))
    if not claim(run_id, scope):
        return {"run_id": run_id, "skipped": True}
    fixture_ids = ingestion.fixtures_for_odds(league_ids=league_ids)
    for fixture_id in fixture_ids:
        publish("fetch_odds_for_single_event_task", fixture_id, run_id)
    conn = _redis()
    failed = sorted(int(x) for x in conn.smembers(_key(run_id, "failed")))
    if not league_ids:
        conn.eval(_RELEASE_IF_OWNER, 1, RUN_KEY, run_id)  # the next run may start
    return {"run_id": run_id, "fixtures": len(fixture_ids), "failed_leagues": failed}


@shared_task(
    queue=FOOTBALL_QUEUE,
    bind=True,
    name="fetch_odds_for_single_event_task",
    max_retries=API_RETRIES,
    soft_time_limit=60,
    time_limit=75,
)
def fetch_odds_for_single_event_task(self, fixture_id: int, run_id: str | None = None) -> dict:
    try:
        return ingestion.fetch_fixture_odds(fixture_id=fixture_id)
    except Fixture.DoesNotExist:
        return {"fixture_id": fixture_id, "error": "missing"}
    except ApiFootballError as exc:
        return _retry_or_give_up(self, exc, fixture_id=fixture_id, run_id=run_id)


# --- scores and settlement ------------------------------------------------------------------------
def fixtures_due_for_settlement(now=None) -> list[int]:
    """Final or void fixtures with markets whose outcomes are not settled, and postponed ones
    past the void deadline (F-BET's pipeline decides; a PST fixture waits until then)."""
    now = now or timezone.now()
    deadline = now - timedelta(hours=settings.FOOTBALL_POSTPONED_VOID_HOURS)
    return list(
        Fixture.objects.filter(
            Q(status__in=FixtureStatus.FINISHED | FixtureStatus.VOID)
            | Q(status=FixtureStatus.POSTPONED, postponed_at__lte=deadline),
            Exists(Market.objects.filter(fixture=OuterRef("pk"))),
            outcomes_settled_at__isnull=True,
        )
        .order_by("kickoff", "pk")
        .values_list("pk", flat=True)[:1000]
    )


@shared_task(
    queue=FOOTBALL_QUEUE,
    name="run_score_and_settlement_task",
    soft_time_limit=60,
    time_limit=75,
    ignore_result=False,
)
@single_run("run_score_and_settlement_task", timeout=75)
def run_score_and_settlement_task() -> dict[str, Any]:
    """Scheduled: scores of every active league, and settlement of what is due."""
    league_ids = list(active_leagues().values_list("pk", flat=True))
    for league_id in league_ids:
        publish("fetch_scores_for_league_task", league_id)
    due = fixtures_due_for_settlement()
    for fixture_id in due:
        publish_on_commit(SETTLE_TASK, fixture_id)
    return {"leagues": len(league_ids), "settlements": len(due)}


@shared_task(
    queue=FOOTBALL_QUEUE,
    bind=True,
    name="fetch_scores_for_league_task",
    max_retries=API_RETRIES,
    soft_time_limit=90,
    time_limit=110,
)
def fetch_scores_for_league_task(self, league_id: int) -> dict[str, Any]:
    try:
        result = ingestion.fetch_league_scores(league_id=league_id)
    except ApiFootballError as exc:
        return _retry_or_give_up(self, exc, league_id=league_id)
    result["settlements"] = publish_settlements(result.pop("newly_settleable"))
    return {"league_id": league_id, **result}
