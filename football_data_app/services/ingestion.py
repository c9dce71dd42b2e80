"""Catalogue ingestion: API-Football payloads upserted in bulk, a constant number of queries.

Every write is `bulk_create(update_conflicts=True)` keyed on the API's ids, never a
`get_or_create` loop. Betting rows are never touched here: an odds refresh changes Outcome
rows only, and a placed BetLeg keeps its own agreed odds and line. An outcome missing from a
refresh is made inactive (it may be referenced by legs: never deleted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from football_data_app.apifootball import ApiFootballClient
from football_data_app.models import (
    BetType,
    Bookmaker,
    Fixture,
    FixtureStatus,
    League,
    Market,
    Outcome,
    Team,
)
from football_data_app.parsing import (
    BadItem,
    FixtureData,
    LeagueData,
    OddsData,
    parse_catalogue,
    parse_fixture,
    parse_leagues,
    parse_odds,
)

logger = logging.getLogger(__name__)

SETTLEABLE = FixtureStatus.FINISHED | FixtureStatus.VOID | {FixtureStatus.POSTPONED}
FIXTURE_FIELDS = [
    "league", "home_team", "away_team", "kickoff", "round", "status", "elapsed",
    "goals_home", "goals_away", "halftime_home", "halftime_away", "fulltime_home",
    "fulltime_away", "extratime_home", "extratime_away", "penalty_home", "penalty_away",
    "postponed_at", "last_synced_at",
]  # fmt: skip


@dataclass
class FixtureUpsert:
    upserted: int = 0
    skipped: int = 0
    # Fixtures that became final, void or postponed in this upsert (settlement candidates).
    newly_settleable: list[int] = field(default_factory=list)


def _parse_all(items: Iterable[Any], parse, what: str) -> tuple[list[Any], int]:
    parsed, skipped = [], 0
    for item in items:
        try:
            parsed.append(parse(item))
        except BadItem as exc:
            skipped += 1
            logger.warning("skipped a bad %s item: %s", what, exc)
    return parsed, skipped


# --- leagues and id catalogues ------------------------------------------------------------------
@transaction.atomic
def upsert_leagues(*, leagues: list[LeagueData]) -> int:
    """A new season of a league that is active stays active (the operator chose the league)."""
    if not leagues:
        return 0
    active_ids = set(
        League.objects.filter(active=True, api_id__in={x.api_id for x in leagues}).values_list(
            "api_id", flat=True
        )
    )
    now = timezone.now()
    League.objects.bulk_create(
        [
            League(
                api_id=x.api_id,
                season=x.season,
                name=x.name,
                country=x.country,
                logo_url=x.logo_url,
                active=x.api_id in active_ids,
                last_synced_at=now,
            )
            for x in leagues
        ],
        update_conflicts=True,
        unique_fields=["api_id", "season"],
        update_fields=["name", "country", "logo_url", "last_synced_at"],
    )
    return len(leagues)


@transaction.atomic
def upsert_catalogue(*, bookmakers: dict[int, str], bets: dict[int, str]) -> dict[str, int]:
    if bookmakers:
        Bookmaker.objects.bulk_create(
            [Bookmaker(api_id=i, name=n) for i, n in bookmakers.items()],
            update_conflicts=True,
            unique_fields=["api_id"],
            update_fields=["name"],
        )
    if bets:
        BetType.objects.bulk_create(
            [BetType(api_id=i, name=n) for i, n in bets.items()],
            update_conflicts=True,
            unique_fields=["api_id"],
            update_fields=["name"],
        )
    return {"bookmakers": len(bookmakers), "bet_types": len(bets)}


def refresh_leagues(*, client: ApiFootballClient | None = None) -> dict[str, int]:
    """/leagues (the configured ids, or every current league), /odds/bets, /odds/bookmakers."""
    client = client or ApiFootballClient()
    wanted = list(settings.APIFOOTBALL_LEAGUE_IDS)
    items: list[Any] = []
    if wanted:
        for league_id in wanted:
            items.extend(client.leagues(id=league_id, current="true"))
    else:
        items = client.leagues(current="true")
    parsed, skipped = _parse_all(items, parse_leagues, "league")
    leagues = [season for seasons in parsed for season in seasons]
    catalogue = upsert_catalogue(
        bookmakers=parse_catalogue(client.bookmakers()), bets=parse_catalogue(client.bets())
    )
    return {"leagues": upsert_leagues(leagues=leagues), "skipped": skipped, **catalogue}


# --- fixtures -----------------------------------------------------------------------------------
@transaction.atomic
def upsert_fixtures(*, fixtures: list[FixtureData]) -> FixtureUpsert:
    """Teams, then fixtures, in five queries whatever the number of fixtures.

    A fixture of a league we do not know is skipped (leagues are catalogued first).
    """
    result = FixtureUpsert()
    if not fixtures:
        return result
    teams = {t.api_id: t for f in fixtures for t in (f.home, f.away)}
    Team.objects.bulk_create(
        [Team(api_id=t.api_id, name=t.name, logo_url=t.logo_url) for t in teams.values()],
        update_conflicts=True,
        unique_fields=["api_id"],
        update_fields=["name", "logo_url"],
    )
    team_pk = dict(Team.objects.filter(api_id__in=teams).values_list("api_id", "pk"))
    league_pk = {
        (api_id, season): pk
        for api_id, season, pk in League.objects.filter(
            api_id__in={f.league_api_id for f in fixtures}
        ).values_list("api_id", "season", "pk")
    }
    existing = {
        api_id: (status, postponed_at)
        for api_id, status, postponed_at in Fixture.objects.filter(
            api_id__in=[f.api_id for f in fixtures]
        ).values_list("api_id", "status", "postponed_at")
    }
    now = timezone.now()
    rows = []
    for f in fixtures:
        league = league_pk.get((f.league_api_id, f.season))
        if league is None:
            result.skipped += 1
            continue
        old_status, postponed_at = existing.get(f.api_id, (None, None))
        if f.status == FixtureStatus.POSTPONED and postponed_at is None:
            postponed_at = now  # the void deadline counts from when we first saw PST
        if f.status in SETTLEABLE and old_status != f.status:
            result.newly_settleable.append(f.api_id)
        rows.append(
            Fixture(
                api_id=f.api_id,
                league_id=league,
                home_team_id=team_pk[f.home.api_id],
                away_team_id=team_pk[f.away.api_id],
                kickoff=f.kickoff,
                round=f.round,
                status=f.status,
                elapsed=f.elapsed,
                goals_home=f.goals[0],
                goals_away=f.goals[1],
                halftime_home=f.halftime[0],
                halftime_away=f.halftime[1],
                fulltime_home=f.fulltime[0],
                fulltime_away=f.fulltime[1],
                extratime_home=f.extratime[0],
                extratime_away=f.extratime[1],
                penalty_home=f.penalty[0],
                penalty_away=f.penalty[1],
                postponed_at=postponed_at,
                last_synced_at=now,
            )
        )
    if rows:
        Fixture.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["api_id"],
            update_fields=FIXTURE_FIELDS,
        )
    result.upserted = len(rows)
    return result


def fetch_league_fixtures(*, league_id: int, client: ApiFootballClient | None = None) -> dict:
    """The whole season of one league (one call: /fixtures is not paged)."""
    client = client or ApiFootballClient()
    league = League.objects.get(pk=league_id)
    items = client.fixtures(league=league.api_id, season=league.season)
    parsed, bad = _parse_all(items, parse_fixture, "fixture")
    result = upsert_fixtures(fixtures=parsed)
    League.objects.filter(pk=league_id).update(last_synced_at=timezone.now())
    return {
        "league": league.api_id,
        "fixtures": result.upserted,
        "skipped": result.skipped + bad,
        "newly_settleable": result.newly_settleable,
    }


def fixtures_needing_scores(*, league_id: int, now=None) -> list[int]:
    """Api ids of fixtures that are live, due to start, overdue or postponed."""
    now = now or timezone.now()
    # Not for ever: a fixture the API stopped updating, or postponed long past the void
    # deadline, is left to the full update (which reads the whole season).
    recent = Q(kickoff__gte=now - timedelta(days=3)) | Q(
        status=FixtureStatus.POSTPONED,
        postponed_at__gte=now - timedelta(hours=settings.FOOTBALL_POSTPONED_VOID_HOURS + 24),
    )
    return list(
        Fixture.objects.filter(recent, league_id=league_id, kickoff__lte=now + timedelta(minutes=5))
        .exclude(status__in=FixtureStatus.FINISHED | FixtureStatus.VOID)
        .order_by("kickoff")
        .values_list("api_id", flat=True)
    )


def fetch_league_scores(*, league_id: int, client: ApiFootballClient | None = None) -> dict:
    """Live and due fixtures of one league by `ids` (20 a call): a few calls, not a season."""
    client = client or ApiFootballClient()
    ids = fixtures_needing_scores(league_id=league_id)
    if not ids:
        return {"fixtures": 0, "newly_settleable": []}
    parsed, bad = _parse_all(client.fixtures_by_ids(ids), parse_fixture, "fixture")
    result = upsert_fixtures(fixtures=parsed)
    return {
        "fixtures": result.upserted,
        "skipped": result.skipped + bad,
        "newly_settleable": result.newly_settleable,
    }


# --- odds ---------------------------------------------------------------------------------------
def fixtures_for_odds(*, league_ids: list[int] | None = None, now=None) -> list[int]:
    """Fixtures of active leagues (or of `league_ids`) not kicked off, within the odds window."""
    now = now or timezone.now()
    fixtures = Fixture.objects.all()
    if league_ids:
        fixtures = fixtures.filter(league_id__in=league_ids)
    return list(
        fixtures.filter(
            league__active=True,
            status__in=FixtureStatus.SCHEDULED,
            kickoff__gt=now,
            kickoff__lte=now + timedelta(days=settings.APIFOOTBALL_ODDS_DAYS_AHEAD),
        )
        .order_by("kickoff")
        .values_list("pk", flat=True)
    )


@transaction.atomic
def upsert_odds(*, fixture: Fixture, odds: list[OddsData]) -> dict[str, int]:
    """Markets and outcomes of one fixture in seven queries; vanished outcomes go inactive.

    Only Outcome rows change: a BetLeg keeps the odds agreed at placement.
    """
    now = timezone.now()
    bookmakers = {b.api_id: b.name for o in odds for b in o.bookmakers}
    bets = {bet.api_id: bet.name for o in odds for b in o.bookmakers for bet in b.bets}
    upsert_catalogue(bookmakers=bookmakers, bets=bets)
    bookmaker_pk = dict(Bookmaker.objects.filter(api_id__in=bookmakers).values_list("api_id", "pk"))
    bet_pk = dict(BetType.objects.filter(api_id__in=bets).values_list("api_id", "pk"))
    quotes: dict[tuple[int, int], dict[str, Any]] = {}
    updated: dict[tuple[int, int], Any] = {}
    for o in odds:
        for b in o.bookmakers:
            for bet in b.bets:
                key = (bookmaker_pk[b.api_id], bet_pk[bet.api_id])
                quotes.setdefault(key, {}).update({p.label: p for p in bet.prices})
                updated[key] = o.updated_at or now
    markets = Market.objects.bulk_create(
        [
            Market(fixture=fixture, bookmaker_id=bk, bet_type_id=bt, updated_at=updated[(bk, bt)])
            for bk, bt in quotes
        ],
        update_conflicts=True,
        unique_fields=["fixture", "bookmaker", "bet_type"],
        update_fields=["updated_at"],
    )
    market_pk = {
        (bk, bt): pk
        for bk, bt, pk in Market.objects.filter(fixture=fixture).values_list(
            "bookmaker_id", "bet_type_id", "pk"
        )
    }
    outcomes = Outcome.objects.bulk_create(
        [
            Outcome(
                market_id=market_pk[key],
                label=price.label,
                line=price.line,
                odds=price.odds,
                active=True,
                updated_at=now,
            )
            for key, prices in quotes.items()
            for price in prices.values()
        ],
        update_conflicts=True,
        unique_fields=["market", "label"],
        update_fields=["line", "odds", "active", "updated_at"],
    )
    quoted = {(market_pk[key], label) for key, prices in quotes.items() for label in prices}
    # Whatever of this fixture was not quoted now is withdrawn (one UPDATE, no deletes).
    stale = [
        pk
        for pk, market_id, label in Outcome.objects.filter(
            market__fixture=fixture, active=True
        ).values_list("pk", "market_id", "label")
        if (market_id, label) not in quoted
    ]
    deactivated = Outcome.objects.filter(pk__in=stale).update(active=False, updated_at=now)
    return {"markets": len(markets), "outcomes": len(outcomes), "deactivated": deactivated}


def fetch_fixture_odds(*, fixture_id: int, client: ApiFootballClient | None = None) -> dict:
    """/odds for one fixture (paged), for the configured bookmaker (0: all of them)."""
    client = client or ApiFootballClient()
    fixture = Fixture.objects.get(pk=fixture_id)
    if fixture.status not in FixtureStatus.SCHEDULED:
        return {"fixture": fixture.api_id, "skipped": f"status {fixture.status}"}
    bookmaker = int(settings.APIFOOTBALL_BOOKMAKER_ID) or None
    items = client.odds(fixture=fixture.api_id, bookmaker=bookmaker)
    parsed, bad = _parse_all(items, parse_odds, "odds")
    parsed = [o for o in parsed if o.fixture_api_id == fixture.api_id]
    if not parsed:
        # No quotes at all is not "everything withdrawn": the API may simply not cover it yet.
        return {"fixture": fixture.api_id, "markets": 0, "outcomes": 0, "skipped": bad}
    return {"fixture": fixture.api_id, **upsert_odds(fixture=fixture, odds=parsed)}
