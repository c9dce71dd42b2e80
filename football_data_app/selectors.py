"""Read-side queries over the football catalogue (fixtures, markets, outcomes, API calls)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from football_data_app.models import ApiCallLog, Fixture, FixtureStatus, League, Outcome

MATCH_WINNER = "Match Winner"
MAIN_LABELS = ("Home", "Draw", "Away")


@dataclass(frozen=True)
class FixtureWithOdds:
    """A fixture with its 1X2 outcomes, in Home, Draw, Away order (all three active)."""

    fixture: Fixture
    outcomes: tuple[Outcome, ...]


def active_leagues() -> QuerySet[League]:
    return League.objects.filter(active=True).order_by("api_id", "season")


def upcoming_fixtures_with_odds(
    *, limit: int = 10, now: datetime | None = None
) -> list[FixtureWithOdds]:
    """Fixtures not kicked off yet that have an active Match Winner market, soonest first.

    One query for the fixtures and one for their outcomes. When several bookmakers quote the
    fixture, the first bookmaker (lowest api id) is the one offered.
    """
    now = now or timezone.now()
    main = (
        Outcome.objects.filter(
            market__bet_type__name=MATCH_WINNER, label__in=MAIN_LABELS, active=True
        )
        .select_related("market")
        .order_by("market__bookmaker__api_id", "market_id")
    )
    fixtures = (
        Fixture.objects.filter(
            kickoff__gt=now,
            status__in=FixtureStatus.SCHEDULED,
            markets__bet_type__name=MATCH_WINNER,
            markets__outcomes__active=True,
        )
        .distinct()
        .select_related("league", "home_team", "away_team")
        .prefetch_related(Prefetch("markets__outcomes", queryset=main, to_attr="main_outcomes"))
        .order_by("kickoff", "pk")
    )
    result: list[FixtureWithOdds] = []
    # Fetch a little more than needed: a fixture can lack one of the three outcomes.
    for fixture in fixtures[: limit * 2]:
        chosen = _main_outcomes(fixture)
        if chosen:
            result.append(FixtureWithOdds(fixture=fixture, outcomes=chosen))
        if len(result) >= limit:
            break
    return result


def _main_outcomes(fixture: Fixture) -> tuple[Outcome, ...]:
    for market in fixture.markets.all():
        by_label = {o.label: o for o in getattr(market, "main_outcomes", [])}
        if all(label in by_label for label in MAIN_LABELS):
            return tuple(by_label[label] for label in MAIN_LABELS)
    return ()


def fixture_outcomes(fixture_id: int, *, active_only: bool = True) -> QuerySet[Outcome]:
    """The outcomes of one fixture with their market, bet type and bookmaker."""
    outcomes = Outcome.objects.filter(market__fixture_id=fixture_id).select_related(
        "market__bet_type", "market__bookmaker"
    )
    if active_only:
        outcomes = outcomes.filter(active=True)
    return outcomes.order_by("market__bet_type__api_id", "market_id", "pk")


def fixtures_to_settle() -> QuerySet[Fixture]:
    """Fixtures whose outcomes are not settled yet and that are final, void or postponed."""
    return Fixture.objects.filter(
        outcomes_settled_at__isnull=True,
        status__in=FixtureStatus.FINISHED | FixtureStatus.VOID | {FixtureStatus.POSTPONED},
    ).order_by("kickoff", "pk")


def last_api_errors(limit: int = 20) -> QuerySet[ApiCallLog]:
    return ApiCallLog.objects.exclude(error_kind="").order_by("-created_at")[:limit]


def last_quota() -> ApiCallLog | None:
    """The latest call that reported the daily quota."""
    return (
        ApiCallLog.objects.filter(requests_remaining__isnull=False).order_by("-created_at").first()
    )
