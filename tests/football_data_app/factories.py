"""Catalogue factories of the football tests (plain functions; F-BET's tests build on them).

Names are stable: `make_league`, `make_team`, `make_fixture(**overrides)`, `make_bookmaker`,
`make_bet_type`, `make_market(fixture, bet_name, {label: odds})`, `make_1x2(fixture)`.
Ids are unique per call so factories never collide inside one test.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from football_data_app.models import (
    BetType,
    Bookmaker,
    Fixture,
    League,
    Market,
    Outcome,
    Team,
)

_ids = itertools.count(900_001)

# The API's common bet ids (sandbox and real API agree on these names).
BET_IDS = {
    "Match Winner": 1,
    "Home/Away": 2,
    "Asian Handicap": 4,
    "Goals Over/Under": 5,
    "Both Teams Score": 8,
    "Double Chance": 12,
}


def next_id() -> int:
    return next(_ids)


def make_league(**fields: Any) -> League:
    fields.setdefault("api_id", next_id())
    fields.setdefault("season", 2026)
    fields.setdefault("name", f"League {fields['api_id']}")
    fields.setdefault("country", "Testland")
    fields.setdefault("active", True)
    return League.objects.create(**fields)


def make_team(name: str | None = None, **fields: Any) -> Team:
    fields.setdefault("api_id", next_id())
    return Team.objects.create(name=name or f"Team {fields['api_id']}", **fields)


def make_fixture(**overrides: Any) -> Fixture:
    """A fixture not kicked off yet (tomorrow), status NS, unless overridden."""
    overrides.setdefault("api_id", next_id())
    if "league" not in overrides:
        overrides["league"] = make_league()
    if "home_team" not in overrides:
        overrides["home_team"] = make_team()
    if "away_team" not in overrides:
        overrides["away_team"] = make_team()
    overrides.setdefault("kickoff", timezone.now() + timedelta(days=1))
    overrides.setdefault("status", "NS")
    return Fixture.objects.create(**overrides)


def make_bookmaker(api_id: int = 8, name: str = "Bet365") -> Bookmaker:
    bookmaker, _ = Bookmaker.objects.get_or_create(api_id=api_id, defaults={"name": name})
    return bookmaker


def make_bet_type(name: str, api_id: int | None = None) -> BetType:
    bet_type = BetType.objects.filter(name=name).first()
    if bet_type is None:
        bet_type = BetType.objects.create(
            api_id=api_id or BET_IDS.get(name) or next_id(), name=name
        )
    return bet_type


def line_of(label: str) -> Decimal | None:
    """The numeric line in a label such as "Over 2.5" or "Home -0.25" (None for "Home")."""
    last = label.rsplit(" ", 1)[-1]
    try:
        return Decimal(last)
    except ArithmeticError:
        return None


def make_market(
    fixture: Fixture,
    bet_name: str,
    odds: dict[str, str | Decimal | float],
    *,
    bookmaker: Bookmaker | None = None,
) -> Market:
    """A market with one active outcome per label; `odds` maps label -> decimal odds."""
    market = Market.objects.create(
        fixture=fixture,
        bookmaker=bookmaker or make_bookmaker(),
        bet_type=make_bet_type(bet_name),
        updated_at=timezone.now(),
    )
    Outcome.objects.bulk_create(
        Outcome(market=market, label=label, line=line_of(label), odds=Decimal(str(value)))
        for label, value in odds.items()
    )
    return market


def make_1x2(
    fixture: Fixture, home: str = "2.10", draw: str = "3.20", away: str = "3.50"
) -> Market:
    return make_market(fixture, "Match Winner", {"Home": home, "Draw": draw, "Away": away})


def outcome(market: Market, label: str) -> Outcome:
    return market.outcomes.get(label=label)
