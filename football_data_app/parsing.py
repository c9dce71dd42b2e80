"""API-Football payloads -> plain dataclasses. Pure: no Django, no I/O, tested directly.

A bad item raises `BadItem` (a ValueError) naming what is wrong; callers skip and count it so
one odd fixture never stops a league's ingestion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class BadItem(ValueError):
    pass


@dataclass(frozen=True)
class LeagueData:
    api_id: int
    season: int
    name: str
    country: str = ""
    logo_url: str = ""


@dataclass(frozen=True)
class TeamData:
    api_id: int
    name: str
    logo_url: str = ""


@dataclass(frozen=True)
class FixtureData:
    api_id: int
    league_api_id: int
    season: int
    kickoff: datetime
    status: str
    home: TeamData
    away: TeamData
    round: str = ""
    elapsed: int | None = None
    goals: tuple[int | None, int | None] = (None, None)
    halftime: tuple[int | None, int | None] = (None, None)
    fulltime: tuple[int | None, int | None] = (None, None)
    extratime: tuple[int | None, int | None] = (None, None)
    penalty: tuple[int | None, int | None] = (None, None)


@dataclass(frozen=True)
class PriceData:
    label: str
    odds: Decimal
    line: Decimal | None


@dataclass(frozen=True)
class BetData:
    api_id: int
    name: str
    prices: tuple[PriceData, ...]


@dataclass(frozen=True)
class BookmakerOdds:
    api_id: int
    name: str
    bets: tuple[BetData, ...]


@dataclass(frozen=True)
class OddsData:
    fixture_api_id: int
    updated_at: datetime | None
    bookmakers: tuple[BookmakerOdds, ...] = field(default_factory=tuple)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise BadItem(f"{what} is not an integer: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadItem(f"{what} is not an integer: {value!r}") from exc


def _opt_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _pair(score: Any, what: str) -> tuple[int | None, int | None]:
    if score is None:
        return (None, None)
    if not isinstance(score, dict):
        raise BadItem(f"{what} is not an object: {score!r}")
    return (
        _opt_int(score.get("home"), f"{what}.home"),
        _opt_int(score.get("away"), f"{what}.away"),
    )


def parse_datetime(value: Any, what: str = "date") -> datetime:
    if not isinstance(value, str):
        raise BadItem(f"{what} is not a date string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadItem(f"{what} is not ISO 8601: {value!r}") from exc
    if parsed.tzinfo is None:
        raise BadItem(f"{what} has no time zone: {value!r}")
    return parsed


def line_of(label: str) -> Decimal | None:
    """The numeric line of a label: "Over 2.5" -> 2.5, "Home -0.25" -> -0.25, "Home" -> None."""
    last = label.rsplit(" ", 1)[-1] if " " in label else ""
    try:
        return Decimal(last) if last else None
    except InvalidOperation:
        return None


def parse_leagues(item: dict[str, Any], *, season: int | None = None) -> list[LeagueData]:
    """One /leagues item -> the wanted season (or the current ones) of that league."""
    try:
        league = item["league"]
        seasons = item.get("seasons") or []
        country = (item.get("country") or {}).get("name") or ""
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadItem(f"league item without `league`: {item!r:.200}") from exc
    api_id = _int(league.get("id"), "league.id")
    years = [
        _int(s.get("year"), "season.year")
        for s in seasons
        if isinstance(s, dict)
        and ((season is None and s.get("current")) or s.get("year") == season)
    ]
    return [
        LeagueData(
            api_id=api_id,
            season=year,
            name=str(league.get("name") or f"League {api_id}")[:200],
            country=str(country)[:100],
            logo_url=str(league.get("logo") or "")[:500],
        )
        for year in years
    ]


def _team(raw: Any, what: str) -> TeamData:
    if not isinstance(raw, dict):
        raise BadItem(f"{what} is not an object")
    api_id = _int(raw.get("id"), f"{what}.id")
    return TeamData(
        api_id=api_id,
        name=str(raw.get("name") or f"Team {api_id}")[:200],
        logo_url=str(raw.get("logo") or "")[:500],
    )


def parse_fixture(item: dict[str, Any]) -> FixtureData:
    try:
        fixture, league, teams = item["fixture"], item["league"], item["teams"]
        status = fixture["status"]
    except (KeyError, TypeError) as exc:
        raise BadItem(f"fixture item lacks fixture/league/teams/status: {item!r:.200}") from exc
    short = status.get("short") if isinstance(status, dict) else None
    if not isinstance(short, str) or not short:
        raise BadItem(f"fixture {fixture.get('id')!r} has no status.short")
    score = item.get("score") or {}
    return FixtureData(
        api_id=_int(fixture.get("id"), "fixture.id"),
        league_api_id=_int(league.get("id"), "league.id"),
        season=_int(league.get("season"), "league.season"),
        kickoff=parse_datetime(fixture.get("date"), "fixture.date"),
        status=short[:8],
        elapsed=_opt_int(status.get("elapsed"), "status.elapsed"),
        round=str(league.get("round") or "")[:100],
        home=_team(teams.get("home"), "teams.home"),
        away=_team(teams.get("away"), "teams.away"),
        goals=_pair(item.get("goals"), "goals"),
        halftime=_pair(score.get("halftime"), "score.halftime"),
        fulltime=_pair(score.get("fulltime"), "score.fulltime"),
        extratime=_pair(score.get("extratime"), "score.extratime"),
        penalty=_pair(score.get("penalty"), "score.penalty"),
    )


def _price(raw: Any) -> PriceData | None:
    """`odd` is a string ("1.85"); a value that is not a price above 1 is left out."""
    if not isinstance(raw, dict):
        return None
    label = str(raw.get("value", "")).strip()
    try:
        odds = Decimal(str(raw.get("odd")))
    except InvalidOperation:
        return None
    if not label or not odds.is_finite() or odds <= 1:
        return None
    return PriceData(label=label[:100], odds=odds.quantize(Decimal("0.001")), line=line_of(label))


def parse_odds(item: dict[str, Any]) -> OddsData:
    try:
        fixture_id = _int(item["fixture"]["id"], "fixture.id")
    except (KeyError, TypeError) as exc:
        raise BadItem(f"odds item without fixture.id: {item!r:.200}") from exc
    update = item.get("update")
    bookmakers = []
    for raw_bookmaker in item.get("bookmakers") or []:
        bets = []
        for raw_bet in raw_bookmaker.get("bets") or []:
            prices = tuple(p for p in map(_price, raw_bet.get("values") or []) if p)
            if prices:
                bets.append(
                    BetData(
                        api_id=_int(raw_bet.get("id"), "bet.id"),
                        name=str(raw_bet.get("name") or "")[:200],
                        prices=prices,
                    )
                )
        bookmakers.append(
            BookmakerOdds(
                api_id=_int(raw_bookmaker.get("id"), "bookmaker.id"),
                name=str(raw_bookmaker.get("name") or "")[:200],
                bets=tuple(bets),
            )
        )
    return OddsData(
        fixture_api_id=fixture_id,
        updated_at=parse_datetime(update, "update") if update else None,
        bookmakers=tuple(bookmakers),
    )


def parse_catalogue(items: list[Any]) -> dict[int, str]:
    """/odds/bets or /odds/bookmakers -> {id: name}."""
    return {
        _int(item.get("id"), "id"): str(item.get("name") or "")[:200]
        for item in items
        if isinstance(item, dict)
    }
