"""Ingestion services: bulk upserts with pinned query counts, odds refreshes that never touch
placed legs, outcomes withdrawn (never deleted), and the catalogue selectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from football_data_app.models import (
    BetLeg,
    BetTicket,
    BetType,
    Fixture,
    League,
    Market,
    Outcome,
    Team,
)
from football_data_app.parsing import (
    BetData,
    BookmakerOdds,
    FixtureData,
    LeagueData,
    OddsData,
    PriceData,
    TeamData,
    line_of,
)
from football_data_app.selectors import upcoming_fixtures_with_odds
from football_data_app.services import ingestion
from tests.factories import make_contact
from tests.football_data_app.factories import make_1x2, make_fixture, make_league, make_market

pytestmark = pytest.mark.django_db

KICKOFF = datetime(2030, 1, 5, 15, 0, tzinfo=UTC)


def fixture_data(api_id: int, *, league: int = 39, status: str = "NS", **fields) -> FixtureData:
    return FixtureData(
        api_id=api_id,
        league_api_id=league,
        season=2026,
        kickoff=fields.pop("kickoff", KICKOFF),
        status=status,
        home=TeamData(api_id=api_id * 10, name=f"Home {api_id}"),
        away=TeamData(api_id=api_id * 10 + 1, name=f"Away {api_id}"),
        **fields,
    )


def odds_data(fixture_api_id: int, prices: dict[str, dict[str, str]]) -> OddsData:
    ids = {"Match Winner": 1, "Goals Over/Under": 5, "Asian Handicap": 4, "Both Teams Score": 8}
    return OddsData(
        fixture_api_id=fixture_api_id,
        updated_at=KICKOFF - timedelta(days=1),
        bookmakers=(
            BookmakerOdds(
                api_id=8,
                name="Bet365",
                bets=tuple(
                    BetData(
                        api_id=ids[name],
                        name=name,
                        prices=tuple(
                            PriceData(label=label, odds=Decimal(odd), line=line_of(label))
                            for label, odd in values.items()
                        ),
                    )
                    for name, values in prices.items()
                ),
            ),
        ),
    )


def test_upsert_leagues_is_one_insert_and_keeps_an_active_league_active(
    django_assert_num_queries,
):
    make_league(api_id=39, season=2025, active=True)
    leagues = [LeagueData(api_id=39, season=2026, name="PL"), LeagueData(140, 2026, "La Liga")]
    # savepoint, the active lookup, one INSERT .. ON CONFLICT, release
    with django_assert_num_queries(4):
        ingestion.upsert_leagues(leagues=leagues)
    assert League.objects.get(api_id=39, season=2026).active is True
    assert League.objects.get(api_id=140).active is False
    ingestion.upsert_leagues(leagues=[LeagueData(api_id=140, season=2026, name="LaLiga")])
    assert League.objects.get(api_id=140).name == "LaLiga"


@pytest.mark.parametrize("count", [3, 40])
def test_upsert_fixtures_costs_the_same_queries_for_3_or_40(count, django_assert_num_queries):
    make_league(api_id=39, season=2026)
    fixtures = [fixture_data(1000 + i) for i in range(count)]
    # savepoint, teams upsert, team ids, league ids, existing fixtures, fixtures upsert, release
    # (SQLite splits an INSERT past 999 parameters, ~45 fixtures; PostgreSQL never does).
    with django_assert_num_queries(7):
        result = ingestion.upsert_fixtures(fixtures=fixtures)
    assert result.upserted == count
    assert Fixture.objects.count() == count
    assert Team.objects.count() == 2 * count
    # Again, with scores: the same rows are updated in the same number of queries.
    finished = [
        fixture_data(1000 + i, status="FT", goals=(2, 1), halftime=(1, 0), fulltime=(2, 1))
        for i in range(count)
    ]
    with django_assert_num_queries(7):
        result = ingestion.upsert_fixtures(fixtures=finished)
    assert Fixture.objects.count() == count
    assert len(result.newly_settleable) == count
    first = Fixture.objects.get(api_id=1000)
    assert (first.status, first.goals_home, first.fulltime_away, first.halftime_home) == (
        "FT",
        2,
        1,
        1,
    )


def test_upsert_fixtures_keeps_pen_scores_and_first_postponement():
    make_league(api_id=39, season=2026)
    ingestion.upsert_fixtures(
        fixtures=[
            fixture_data(
                1,
                status="PEN",
                goals=(3, 3),
                halftime=(2, 0),
                fulltime=(2, 2),
                extratime=(1, 1),
                penalty=(4, 2),
            ),
            fixture_data(2, status="PST"),
            fixture_data(3, league=999),  # a league we do not know: skipped
        ]
    )
    pen = Fixture.objects.get(api_id=1)
    assert (pen.goals_home, pen.fulltime_home, pen.extratime_home, pen.penalty_home) == (3, 2, 1, 4)
    postponed = Fixture.objects.get(api_id=2)
    first_seen = postponed.postponed_at
    assert first_seen is not None
    result = ingestion.upsert_fixtures(fixtures=[fixture_data(2, status="PST")])
    postponed.refresh_from_db()
    assert postponed.postponed_at == first_seen  # the void deadline does not move
    assert result.newly_settleable == []  # already PST before: not new
    assert not Fixture.objects.filter(api_id=3).exists()


PRICES = {
    "Match Winner": {"Home": "2.10", "Draw": "3.30", "Away": "3.60"},
    "Goals Over/Under": {"Over 2.5": "1.90", "Under 2.5": "1.90", "Over 2.25": "1.75"},
    "Asian Handicap": {"Home -0.25": "1.95", "Away +0.25": "1.85"},
}


def test_upsert_odds_costs_constant_queries(django_assert_num_queries):
    fixture = make_fixture()
    # savepoint; catalogue: 2 upserts (+ its savepoint/release); bookmaker ids; bet type ids;
    # markets upsert; market ids; outcomes upsert; active outcomes; release (+1 UPDATE when
    # something was withdrawn)
    with django_assert_num_queries(12):
        result = ingestion.upsert_odds(fixture=fixture, odds=[odds_data(fixture.api_id, PRICES)])
    assert result == {"markets": 3, "outcomes": 8, "deactivated": 0}
    over = Outcome.objects.get(market__fixture=fixture, label="Over 2.25")
    assert (over.odds, over.line) == (Decimal("1.750"), Decimal("2.25"))
    bigger = {**PRICES, "Both Teams Score": {"Yes": "1.80", "No": "2.00"}}
    with django_assert_num_queries(12):
        ingestion.upsert_odds(fixture=fixture, odds=[odds_data(fixture.api_id, bigger)])
    assert Market.objects.filter(fixture=fixture).count() == 4


def test_odds_refresh_updates_outcomes_but_never_a_placed_leg():
    fixture = make_fixture()
    ingestion.upsert_odds(fixture=fixture, odds=[odds_data(fixture.api_id, PRICES)])
    home = Outcome.objects.get(market__fixture=fixture, label="Home")
    over = Outcome.objects.get(market__fixture=fixture, label="Over 2.5")
    ticket = BetTicket.objects.create(contact=make_contact(), kind="accumulator", stake="10.00")
    leg = BetLeg.objects.create(
        ticket=ticket,
        outcome=home,
        fixture=fixture,
        odds=home.odds,
        label=home.label,
        bet_type_name="Match Winner",
    )
    other_fixture = make_fixture()
    other_market = make_market(other_fixture, "Goals Over/Under", {"Over 2.5": "2.00"})
    other_leg = BetLeg.objects.create(
        ticket=ticket,
        outcome=other_market.outcomes.get(),
        fixture=other_fixture,
        odds=Decimal("2.000"),
        line=Decimal("2.5"),
        label="Over 2.5",
        bet_type_name="Goals Over/Under",
    )
    # The refresh moves Home's price and withdraws Over 2.5 altogether.
    refreshed = {
        "Match Winner": {"Home": "1.55", "Draw": "3.90", "Away": "5.50"},
        "Goals Over/Under": {"Under 2.5": "1.70", "Over 2.25": "2.05"},
        "Asian Handicap": PRICES["Asian Handicap"],
    }
    result = ingestion.upsert_odds(fixture=fixture, odds=[odds_data(fixture.api_id, refreshed)])
    assert result["deactivated"] == 1
    home.refresh_from_db()
    over.refresh_from_db()
    assert home.odds == Decimal("1.550")
    assert over.active is False  # withdrawn, never deleted (legs may reference it)
    leg.refresh_from_db()
    other_leg.refresh_from_db()
    assert (leg.odds, leg.label, leg.result) == (Decimal("2.100"), "Home", "")
    assert (other_leg.odds, other_leg.line) == (Decimal("2.000"), Decimal("2.50"))
    assert BetLeg.objects.count() == 2
    # A later quote brings the withdrawn outcome back, still without touching the leg.
    ingestion.upsert_odds(fixture=fixture, odds=[odds_data(fixture.api_id, PRICES)])
    over.refresh_from_db()
    assert over.active is True


def test_upcoming_fixtures_with_odds_offers_1x2_of_fixtures_not_kicked_off(
    django_assert_num_queries,
):
    now = timezone.now()
    league = make_league()
    soon = make_fixture(league=league, kickoff=now + timedelta(hours=1))
    later = make_fixture(league=league, kickoff=now + timedelta(hours=5))
    started = make_fixture(league=league, kickoff=now - timedelta(minutes=5), status="1H")
    postponed = make_fixture(league=league, kickoff=now + timedelta(hours=2), status="PST")
    no_odds = make_fixture(league=league, kickoff=now + timedelta(hours=3))
    partial = make_fixture(league=league, kickoff=now + timedelta(hours=4))
    for fixture in (soon, later, started, postponed):
        make_1x2(fixture)
    make_market(partial, "Match Winner", {"Home": "2.0", "Away": "2.0"})
    make_market(no_odds, "Both Teams Score", {"Yes": "1.9", "No": "1.9"})
    BetType.objects.get_or_create(api_id=5, defaults={"name": "Goals Over/Under"})

    with django_assert_num_queries(3):  # fixtures, their markets, the 1X2 outcomes
        offered = upcoming_fixtures_with_odds(limit=10, now=now)
    assert [o.fixture for o in offered] == [soon, later]
    assert [o.label for o in offered[0].outcomes] == ["Home", "Draw", "Away"]
    assert offered[0].outcomes[0].odds == Decimal("2.100")
    assert len(upcoming_fixtures_with_odds(limit=1, now=now)) == 1
