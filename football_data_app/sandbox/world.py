"""The sandbox's football world: leagues, fixtures with their planned match, odds. No Django.

A fixture's plan fixes the goals (minute, side), the ending (FT, AET, PEN) or a fate (PST,
CANC, ABD). Its state at any moment is computed from the clock: match minutes run at `speed`
per real second from the kick-off, so NS -> 1H -> HT -> 2H -> FT (-> BT -> ET -> P -> AET/PEN)
is walked in a couple of minutes. The generated world is deterministic for a seed and a start
time; a scenario (JSON) replaces it so tests pin exact fixtures and scores.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

BOOKMAKERS = {8: "Bet365", 6: "Bwin"}
BETS = {
    1: "Match Winner",
    2: "Home/Away",
    4: "Asian Handicap",
    5: "Goals Over/Under",
    8: "Both Teams Score",
    12: "Double Chance",
}
LEAGUES = [
    (39, "Premier League", "England", False),
    (140, "La Liga", "Spain", False),
    (2, "UEFA Champions League", "World", True),  # a cup: draws go to extra time
]
TEAMS = {
    39: ["Arsenal", "Chelsea", "Liverpool", "Everton", "Brighton", "Fulham", "Wolves",
         "Brentford", "Burnley", "Leeds", "Newcastle", "Bournemouth", "Aston Villa",
         "Tottenham", "Nottingham Forest", "Crystal Palace", "West Ham", "Sunderland",
         "Manchester City", "Manchester United"],
    140: ["Barcelona", "Real Madrid", "Atletico Madrid", "Sevilla", "Valencia", "Villarreal",
          "Real Sociedad", "Athletic Club", "Real Betis", "Celta Vigo", "Getafe", "Osasuna",
          "Girona", "Mallorca", "Alaves", "Rayo Vallecano", "Espanyol", "Elche", "Levante",
          "Oviedo"],
    2: ["Bayern Munich", "Inter", "PSG", "Benfica", "Porto", "Ajax", "Celtic", "Napoli",
        "Juventus", "Dortmund", "Leipzig", "Feyenoord", "Club Brugge", "Sporting CP",
        "Galatasaray", "Salzburg", "Monaco", "Olympiacos", "Slavia Praha", "Copenhagen"],
}  # fmt: skip
# Real minutes from the world's start to each fixture's kick-off (per league, shifted a little
# per league): a few finished, several within minutes (the demo watches them end), the rest
# hours and days ahead (what customers bet on).
KICKOFF_MINUTES = [-240, -120, 2, 4, 7, 12, 60, 180, 1440, 2880]
FATES = {3: "PST", 6: "CANC", 4: "ABD"}  # index in the league -> a fixture that is not played

# Match clock in match minutes: 1H 0-45, HT 45-60, 2H 60-105, then for a cup tie BT 105-110,
# ET 110-140, P 140-150.
HT_START, SH_START, FT_AT, ET_START, ET_END, PEN_END = 45, 60, 105, 110, 140, 150
ABANDON_AT = 75  # an abandoned fixture stops in the second half


@dataclass
class Plan:
    """What happens in a fixture: goals as (match minute on the 0-120 scale, "home"|"away")."""

    fixture_id: int
    league_id: int
    season: int
    home: tuple[int, str]
    away: tuple[int, str]
    kickoff: datetime
    round: str = "Regular Season - 1"
    goals: list[tuple[int, str]] = field(default_factory=list)
    cup: bool = False  # a draw after 90' goes to extra time
    penalties: tuple[int, int] | None = None
    fate: str = ""  # "", PST, CANC, ABD
    status: str = ""  # a pinned status (scenario): the clock is ignored
    pinned: dict[str, Any] | None = None  # a pinned goals/score snapshot (scenario)
    strength: float = 0.0  # home advantage in goals (drives the odds)
    odds: dict[str, dict[str, str]] | None = None  # a scenario's own prices


@dataclass
class World:
    leagues: list[dict[str, Any]]
    plans: list[Plan]
    started_at: datetime
    season: int

    def league_ids(self) -> set[int]:
        return {league["id"] for league in self.leagues}


def generate_world(*, seed: int, started_at: datetime) -> World:
    rng = random.Random(seed)
    season = started_at.year
    leagues, plans = [], []
    team_ids = {league: 1000 * (n + 1) for n, (league, *_) in enumerate(LEAGUES)}
    for n, (league_id, name, country, cup) in enumerate(LEAGUES):
        leagues.append({"id": league_id, "name": name, "country": country, "season": season})
        names = TEAMS[league_id]
        for index, minutes in enumerate(KICKOFF_MINUTES):
            home_i, away_i = 2 * index, 2 * index + 1
            kickoff = started_at + timedelta(minutes=minutes + n)
            plan = Plan(
                fixture_id=league_id * 10000 + seed % 100 * 100 + index + 1,
                league_id=league_id,
                season=season,
                home=(team_ids[league_id] + home_i, names[home_i]),
                away=(team_ids[league_id] + away_i, names[away_i]),
                kickoff=kickoff.replace(second=0, microsecond=0),
                round=f"Regular Season - {index // 5 + 1}" if not cup else "Round of 16",
                cup=cup,
                fate=FATES.get(index, "") if n == 0 or index == 3 else "",
                strength=rng.uniform(-0.6, 0.9),
            )
            plan.goals = _random_goals(rng, plan.strength)
            if cup:
                _finish_cup_tie(rng, plan, force_draw=index in (2, 5))
            plans.append(plan)
    return World(leagues=leagues, plans=plans, started_at=started_at, season=season)


def _random_goals(rng: random.Random, strength: float) -> list[tuple[int, str]]:
    home = min(5, max(0, round(rng.gauss(1.4 + strength / 2, 1.1))))
    away = min(5, max(0, round(rng.gauss(1.1 - strength / 2, 1.0))))
    goals = [(rng.randint(1, 90), "home") for _ in range(home)]
    goals += [(rng.randint(1, 90), "away") for _ in range(away)]
    return sorted(goals)


def _finish_cup_tie(rng: random.Random, plan: Plan, *, force_draw: bool) -> None:
    if force_draw:  # the demo shows extra time and a shoot-out for sure
        level = rng.randint(0, 2)
        plan.goals = sorted(
            [(rng.randint(1, 90), s) for s in ("home", "away") for _ in range(level)]
        )
    home, away = _count(plan.goals, 90)
    if home != away:
        return
    if rng.random() < 0.5:  # settled in extra time
        plan.goals.append((rng.randint(91, 120), rng.choice(["home", "away"])))
    else:
        scored = rng.randint(3, 5)
        plan.penalties = (scored, scored - 1) if rng.random() < 0.5 else (scored - 1, scored)


def _count(goals: list[tuple[int, str]], until: float) -> tuple[int, int]:
    home = sum(1 for minute, side in goals if minute <= until and side == "home")
    away = sum(1 for minute, side in goals if minute <= until and side == "away")
    return home, away


# --- a fixture at a moment ----------------------------------------------------------------------
def _pair(score: tuple[int, int] | None) -> dict[str, int | None]:
    return {"home": score[0], "away": score[1]} if score else {"home": None, "away": None}


def _goes_to_extra_time(plan: Plan) -> bool:
    home, away = _count(plan.goals, 90)
    return plan.cup and home == away


def state_at(plan: Plan, now: datetime, speed: float) -> dict[str, Any]:
    """status.short, elapsed, goals and score of a plan at `now`, as API-Football shows them."""
    if plan.status:
        pinned = plan.pinned or {}
        return {
            "short": plan.status,
            "elapsed": pinned.get("elapsed"),
            "goals": pinned.get("goals") or _pair(None),
            "score": {k: pinned.get("score", {}).get(k) or _pair(None) for k in _SCORE_KEYS},
        }
    clock = (now - plan.kickoff).total_seconds() * speed  # match minutes
    nothing = {k: _pair(None) for k in _SCORE_KEYS}
    if plan.fate in ("PST", "CANC"):
        return {"short": plan.fate, "elapsed": None, "goals": _pair(None), "score": nothing}
    if clock < 0:
        return {"short": "NS", "elapsed": None, "goals": _pair(None), "score": nothing}
    if plan.fate == "ABD" and clock >= ABANDON_AT:
        clock_minute = ABANDON_AT - (SH_START - HT_START)
        goals = _count(plan.goals, clock_minute)
        return {
            "short": "ABD",
            "elapsed": clock_minute,
            "goals": _pair(goals),
            "score": {**nothing, "halftime": _pair(_count(plan.goals, 45))},
        }
    extra = _goes_to_extra_time(plan)
    if clock < HT_START:
        short, minute = "1H", int(clock) + 1
    elif clock < SH_START:
        short, minute = "HT", 45
    elif clock < FT_AT:
        short, minute = "2H", min(90, 46 + int(clock - SH_START))
    elif not extra:
        short, minute = "FT", 90
    elif clock < ET_START:
        short, minute = "BT", 90
    elif clock < ET_END:
        short, minute = "ET", min(120, 91 + int(clock - ET_START))
    elif plan.penalties and clock < PEN_END:
        short, minute = "P", 120
    else:
        short, minute = ("PEN" if plan.penalties else "AET"), 120
    goals = _count(plan.goals, minute)
    score = dict(nothing)
    if short not in ("1H",):
        score["halftime"] = _pair(_count(plan.goals, 45))
    if short in ("FT", "BT", "ET", "P", "AET", "PEN"):
        score["fulltime"] = _pair(_count(plan.goals, 90))
    if short in ("P", "AET", "PEN"):
        total, regulation = _count(plan.goals, 120), _count(plan.goals, 90)
        # Extra-time goals only (the contract's [verify]: one sample shows it cumulative).
        score["extratime"] = _pair((total[0] - regulation[0], total[1] - regulation[1]))
    if short == "PEN" and plan.penalties:
        score["penalty"] = _pair(plan.penalties)
    return {"short": short, "elapsed": minute, "goals": _pair(goals), "score": score}


_SCORE_KEYS = ("halftime", "fulltime", "extratime", "penalty")
_LONG = {
    "TBD": "Time To Be Defined", "NS": "Not Started", "1H": "First Half", "HT": "Halftime",
    "2H": "Second Half", "ET": "Extra Time", "BT": "Break Time", "P": "Penalty In Progress",
    "FT": "Match Finished", "AET": "Match Finished", "PEN": "Match Finished",
    "PST": "Match Postponed", "CANC": "Match Cancelled", "ABD": "Match Abandoned",
    "SUSP": "Match Suspended", "INT": "Match Interrupted", "AWD": "Technical Loss",
    "WO": "WalkOver", "LIVE": "In Progress",
}  # fmt: skip


def fixture_json(plan: Plan, league: dict[str, Any], now: datetime, speed: float) -> dict:
    state = state_at(plan, now, speed)
    goals = state["goals"]
    finished = state["short"] in ("FT", "AET", "PEN")
    winner_home = winner_away = None
    if finished and goals["home"] is not None:
        home, away = goals["home"], goals["away"]
        if plan.penalties and state["short"] == "PEN":
            home, away = plan.penalties
        if home != away:
            winner_home, winner_away = home > away, away > home
    return {
        "fixture": {
            "id": plan.fixture_id,
            "referee": None,
            "timezone": "UTC",
            "date": plan.kickoff.astimezone(UTC).isoformat(),
            "timestamp": int(plan.kickoff.timestamp()),
            "periods": {"first": None, "second": None},
            "venue": {"id": None, "name": f"{plan.home[1]} Stadium", "city": None},
            "status": {
                "long": _LONG.get(state["short"], state["short"]),
                "short": state["short"],
                "elapsed": state["elapsed"],
                "extra": None,
            },
        },
        "league": {
            "id": league["id"],
            "name": league["name"],
            "country": league["country"],
            "logo": f"https://media.api-sports.io/football/leagues/{league['id']}.png",
            "flag": None,
            "season": plan.season,
            "round": plan.round,
        },
        "teams": {
            "home": {"id": plan.home[0], "name": plan.home[1], "logo": "", "winner": winner_home},
            "away": {"id": plan.away[0], "name": plan.away[1], "logo": "", "winner": winner_away},
        },
        "goals": goals,
        "score": state["score"],
    }


# --- odds ----------------------------------------------------------------------------------------
MARGIN = Decimal("1.06")
OU_LINES = ["0.5", "1.5", "2", "2.25", "2.5", "2.75", "3", "3.5", "4.5"]
AH_LINES = ["-1.5", "-1", "-0.75", "-0.5", "-0.25", "0", "0.25", "0.5", "1"]


def _price(probability: float, wobble: float = 0.0) -> str:
    probability = min(0.95, max(0.04, probability + wobble))
    odds = (Decimal(1) / (Decimal(str(probability)) * MARGIN)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return str(max(odds, Decimal("1.01")))


def _signed(value: Decimal) -> str:
    return f"+{value}" if value > 0 else str(value)


def generated_prices(plan: Plan, version: int) -> dict[str, dict[str, str]]:
    """Prices per bet name, drifting a little with `version` (so refreshes change odds)."""
    rng = random.Random(plan.fixture_id * 7919 + version)
    s = plan.strength
    wob = lambda: rng.uniform(-0.02, 0.02)  # noqa: E731 - a tiny local helper
    p_home, p_away = 0.45 + s * 0.18, 0.28 - s * 0.14
    p_draw = max(0.1, 1 - p_home - p_away)
    prices = {
        "Match Winner": {
            "Home": _price(p_home, wob()),
            "Draw": _price(p_draw, wob()),
            "Away": _price(p_away, wob()),
        },
        "Home/Away": {
            "Home": _price(p_home / (p_home + p_away), wob()),
            "Away": _price(p_away / (p_home + p_away), wob()),
        },
        "Double Chance": {
            "Home/Draw": _price(p_home + p_draw, wob()),
            "Home/Away": _price(p_home + p_away, wob()),
            "Draw/Away": _price(p_draw + p_away, wob()),
        },
        "Both Teams Score": {"Yes": _price(0.52, wob()), "No": _price(0.48, wob())},
        "Goals Over/Under": {},
        "Asian Handicap": {},
    }
    for line in OU_LINES:
        p_over = max(0.05, min(0.95, 0.5 - (float(line) - 2.6) * 0.22))
        prices["Goals Over/Under"][f"Over {line}"] = _price(p_over, wob())
        prices["Goals Over/Under"][f"Under {line}"] = _price(1 - p_over, wob())
    for line in AH_LINES:
        value = Decimal(line)
        p_home_covers = max(0.05, min(0.95, 0.5 + (s + float(value)) * 0.3))
        prices["Asian Handicap"][f"Home {_signed(value)}"] = _price(p_home_covers, wob())
        prices["Asian Handicap"][f"Away {_signed(-value)}"] = _price(1 - p_home_covers, wob())
    return prices


def odds_json(
    plan: Plan,
    league: dict[str, Any],
    *,
    version: int,
    updated: datetime,
    bookmaker: int | None,
    bet: int | None,
) -> dict[str, Any]:
    prices = plan.odds or generated_prices(plan, version)
    by_name = {name: bet_id for bet_id, name in BETS.items()}
    bookmakers = []
    for bookmaker_id, bookmaker_name in BOOKMAKERS.items():
        if bookmaker and bookmaker != bookmaker_id:
            continue
        bets = [
            {
                "id": by_name.get(name, 900 + n),
                "name": name,
                "values": [{"value": label, "odd": odd} for label, odd in values.items()],
            }
            for n, (name, values) in enumerate(prices.items())
            if not bet or by_name.get(name) == bet
        ]
        bookmakers.append({"id": bookmaker_id, "name": bookmaker_name, "bets": bets})
    return {
        "league": {"id": league["id"], "name": league["name"], "season": plan.season},
        "fixture": {
            "id": plan.fixture_id,
            "timezone": "UTC",
            "date": plan.kickoff.astimezone(UTC).isoformat(),
            "timestamp": int(plan.kickoff.timestamp()),
        },
        "update": updated.astimezone(UTC).isoformat(),
        "bookmakers": bookmakers,
    }


# --- scenarios -----------------------------------------------------------------------------------
def _score_tuple(raw: Any) -> tuple[int, int] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return int(raw["home"]), int(raw["away"])
    return int(raw[0]), int(raw[1])


def _goals_for(halftime, fulltime, extratime) -> list[tuple[int, str]]:
    """A goal timeline that reaches the given half-time, full-time and extra-time scores."""
    goals: list[tuple[int, str]] = []
    ht = halftime or (0, 0)
    ft = fulltime or ht
    for side, index in (("home", 0), ("away", 1)):
        goals += [(10 + 5 * i, side) for i in range(ht[index])]
        goals += [(50 + 5 * i, side) for i in range(ft[index] - ht[index])]
        if extratime:
            goals += [(95 + 3 * i, side) for i in range(extratime[index])]
    return sorted(goals)


def scenario_world(data: dict[str, Any], *, started_at: datetime) -> World:
    """A world from a scenario: {"leagues": [...], "fixtures": [...]} (docs/football_data.md)."""
    if not isinstance(data, dict) or not isinstance(data.get("fixtures"), list):
        raise ValueError("a scenario is an object with a `fixtures` list")
    season = int(data.get("season") or started_at.year)
    leagues = [
        {
            "id": int(league["id"]),
            "name": str(league.get("name") or f"League {league['id']}"),
            "country": str(league.get("country") or ""),
            "season": int(league.get("season") or season),
        }
        for league in data.get("leagues") or []
    ]
    known = {league["id"] for league in leagues}
    plans = []
    for raw in data["fixtures"]:
        league_id = int(raw["league"])
        if league_id not in known:
            leagues.append({"id": league_id, "name": f"League {league_id}", "country": "",
                            "season": season})  # fmt: skip
            known.add(league_id)
        if "kickoff" in raw:
            kickoff = datetime.fromisoformat(str(raw["kickoff"]).replace("Z", "+00:00"))
        else:
            kickoff = started_at + timedelta(seconds=float(raw.get("kickoff_in_seconds", 3600)))
        home, away = raw.get("home") or {}, raw.get("away") or {}
        halftime = _score_tuple(raw.get("halftime"))
        fulltime = _score_tuple(raw.get("fulltime"))
        extratime = _score_tuple(raw.get("extratime"))
        plan = Plan(
            fixture_id=int(raw["id"]),
            league_id=league_id,
            season=int(raw.get("season") or season),
            home=(int(home.get("id", raw["id"] * 2)), str(home.get("name", "Home"))),
            away=(int(away.get("id", raw["id"] * 2 + 1)), str(away.get("name", "Away"))),
            kickoff=kickoff,
            round=str(raw.get("round") or "Regular Season - 1"),
            goals=_goals_for(halftime, fulltime, extratime),
            cup=bool(extratime is not None or raw.get("penalty") is not None),
            penalties=_score_tuple(raw.get("penalty")),
            fate=str(raw.get("fate") or ""),
            status=str(raw.get("status") or ""),
            pinned=raw.get("snapshot"),
            strength=float(raw.get("strength", 0.2)),
            odds=raw.get("odds"),
        )
        if plan.status and plan.pinned is None:
            plan.pinned = _snapshot_from_scores(plan, halftime, fulltime, extratime)
        plans.append(plan)
    return World(leagues=leagues, plans=plans, started_at=started_at, season=season)


def _snapshot_from_scores(plan: Plan, halftime, fulltime, extratime) -> dict[str, Any]:
    """A pinned status with the scores given: `goals` includes extra time, not penalties."""
    goals = None
    if fulltime is not None:
        goals = (fulltime[0] + (extratime or (0, 0))[0], fulltime[1] + (extratime or (0, 0))[1])
    elif halftime is not None:
        goals = halftime
    return {
        "elapsed": 120 if extratime else (90 if fulltime else None),
        "goals": _pair(goals),
        "score": {
            "halftime": _pair(halftime),
            "fulltime": _pair(fulltime),
            "extratime": _pair(extratime),
            "penalty": _pair(plan.penalties),
        },
    }
