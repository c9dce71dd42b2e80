"""The fake API-Football v3 as a plain WSGI application (no Django ORM), with test controls.

API (GET, header `x-apisports-key`):
  /leagues   id, season, current, country, name
  /fixtures  id, ids (<= 20 joined by "-"), league, season, date, from, to, live=all, status
  /odds      fixture, league, season, date, bookmaker, bet, page (10 fixtures a page)
  /odds/bets, /odds/bookmakers
Controls:
  GET    /sandbox/football/state       clock, counters, every fixture's status and score
  GET    /sandbox/football/requests    the calls received (path, params, header names)
  POST   /sandbox/football/faults      {"faults": [{"kind", "path"?, "params"?, "times"?,
                                        "status"?, "form"?: "object"|"list"}]}
  DELETE /sandbox/football/faults
  POST   /sandbox/football/scenario    a scenario (replaces the world); DELETE: generated again
  POST   /sandbox/football/config      any SandboxConfig field
  POST   /sandbox/football/clock       {"advance_seconds": N}
  POST   /sandbox/football/reset       forget calls, counters, rate-limit windows and faults
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from football_data_app.sandbox.world import (
    BETS,
    BOOKMAKERS,
    World,
    fixture_json,
    generate_world,
    odds_json,
    scenario_world,
    state_at,
)
from whatsappcrm_backend.sandbox_server import UpdatableConfig, django_setting

logger = logging.getLogger(__name__)

ODDS_PAGE_SIZE = 10
MAX_IDS = 20
MESSAGES = {
    "token": "Error/Missing application key. Go to https://www.api-football.com/documentation-v3 "
    "to learn how to get your API application key.",
    "requests": "You have reached the request limit for the day, Go to "
    "https://dashboard.api-football.com to upgrade your plan.",
    "plan": "Free plans do not have access to this season, try from 2022 to 2024.",
}
ALLOWED = {
    "/leagues": {"id", "name", "country", "code", "season", "team", "type", "current", "search"},
    "/fixtures": {"id", "ids", "live", "date", "league", "season", "team", "last", "next",
                  "from", "to", "round", "status", "venue", "timezone"},
    "/odds": {"fixture", "league", "season", "date", "timezone", "page", "bookmaker", "bet"},
    "/odds/bets": {"id", "search"},
    "/odds/bookmakers": {"id", "search"},
}  # fmt: skip


@dataclass
class SandboxConfig(UpdatableConfig):
    keys: list[str] = field(default_factory=list)  # empty: any non-empty key
    speed: float = 1.0  # match minutes per real second
    seed: int = 11
    scenario: str = ""  # path of a scenario JSON file
    per_minute: int = 300
    per_day: int = 75000
    rate_limit_status: int = 200  # 429 to answer a used-up minute with HTTP 429
    odds_period_seconds: float = 60.0  # generated odds drift this often

    @classmethod
    def from_settings(cls, **overrides: Any) -> SandboxConfig:
        key = django_setting("APIFOOTBALL_KEY", "")
        config = cls(
            keys=[key] if key else [],
            speed=float(django_setting("APIFOOTBALL_SANDBOX_SPEED", cls.speed)),
            seed=int(django_setting("APIFOOTBALL_SANDBOX_SEED", cls.seed)),
            scenario=str(django_setting("APIFOOTBALL_SANDBOX_SCENARIO", "")),
            per_minute=int(django_setting("APIFOOTBALL_SANDBOX_PER_MINUTE", cls.per_minute)),
            per_day=int(django_setting("APIFOOTBALL_SANDBOX_PER_DAY", cls.per_day)),
        )
        config.update(overrides)
        return config


@dataclass
class Fault:
    kind: str  # rateLimit, requests, token, plan, malformed, http, other
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)
    times: int | None = 1  # None: until cleared
    status: int = 200
    form: str = "object"  # "list": errors as [{kind: message}]
    message: str = ""


class FootballSandbox:
    """WSGI app; all state behind one lock, safe under a threading server."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig.from_settings()
        self._lock = threading.Lock()
        self.clock_offset = 0.0
        self.requests: deque[dict[str, Any]] = deque(maxlen=5000)
        self.faults: list[Fault] = []
        self.counters = {"requests": 0, "refused": 0, "faults": 0}
        self._minute: deque[float] = deque()
        self._day: tuple[str, int] = ("", 0)
        self.world = self._initial_world()

    # --- world and clock ------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    def _initial_world(self) -> World:
        started = self.now().replace(second=0, microsecond=0)
        if self.config.scenario:
            data = json.loads(Path(self.config.scenario).read_text())
            return scenario_world(data, started_at=started)
        return generate_world(seed=self.config.seed, started_at=started)

    def load_scenario(self, data: dict[str, Any] | None) -> World:
        started = self.now().replace(microsecond=0)
        world = (
            scenario_world(data, started_at=started)
            if data is not None
            else generate_world(seed=self.config.seed, started_at=started)
        )
        with self._lock:
            self.world = world
        return world

    def state(self) -> dict[str, Any]:
        now, speed = self.now(), self.config.speed
        with self._lock:
            world = self.world
            counters = dict(self.counters)
        fixtures = []
        for plan in world.plans:
            state = state_at(plan, now, speed)
            fixtures.append(
                {
                    "id": plan.fixture_id,
                    "league": plan.league_id,
                    "kickoff": plan.kickoff.isoformat(),
                    "status": state["short"],
                    "goals": state["goals"],
                    "score": state["score"],
                }
            )
        return {
            "now": now.isoformat(),
            "started_at": world.started_at.isoformat(),
            "config": asdict(self.config),
            "counters": counters,
            "leagues": world.leagues,
            "fixtures": fixtures,
        }

    # --- limits and faults ----------------------------------------------------------------------
    def _take_fault(self, path: str, params: dict[str, str]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path and fault.path != path:
                    continue
                if any(params.get(k) != str(v) for k, v in fault.params.items()):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                self.counters["faults"] += 1
                return fault
        return None

    def _count(self, wall: float) -> tuple[str | None, int, int]:
        """Count a call against the minute and the day: (error kind or None, left today, left
        this minute)."""
        with self._lock:
            while self._minute and self._minute[0] <= wall - 60.0:
                self._minute.popleft()
            today = datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d")
            day, used = self._day if self._day[0] == today else (today, 0)
            if used >= self.config.per_day:
                return "requests", 0, max(0, self.config.per_minute - len(self._minute))
            if len(self._minute) >= self.config.per_minute:
                return "rateLimit", self.config.per_day - used, 0
            self._minute.append(wall)
            self._day = (day, used + 1)
            return None, self.config.per_day - used - 1, self.config.per_minute - len(self._minute)

    def _quota_headers(self, day_left: int, minute_left: int) -> list[tuple[str, str]]:
        return [
            ("x-ratelimit-requests-limit", str(self.config.per_day)),
            ("x-ratelimit-requests-remaining", str(day_left)),
            ("X-RateLimit-Limit", str(self.config.per_minute)),
            ("X-RateLimit-Remaining", str(minute_left)),
        ]

    # --- the API --------------------------------------------------------------------------------
    def api(self, path: str, environ: dict[str, Any]) -> tuple[int, Any, list[tuple[str, str]]]:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        params = {k: v[-1] for k, v in query.items()}
        key = environ.get("HTTP_X_APISPORTS_KEY", "")
        with self._lock:
            self.counters["requests"] += 1
            self.requests.append(
                {
                    "path": path,
                    "params": params,
                    "headers": sorted(
                        k[5:].lower().replace("_", "-") for k in environ if k.startswith("HTTP_")
                    ),
                    "at": time.time(),
                }
            )
        fault = self._take_fault(path, params)
        if fault is not None:
            return self._fault_answer(path, params, fault)
        if not key or (self.config.keys and key not in self.config.keys):
            return 200, self._envelope(path, params, [], {"token": MESSAGES["token"]}), []
        kind, day_left, minute_left = self._count(time.time())
        headers = self._quota_headers(day_left, minute_left)
        if kind == "rateLimit":
            message = (
                f"Too many requests. Your rate limit is {self.config.per_minute} requests "
                "per minute."
            )
            status = self.config.rate_limit_status
            return status, self._envelope(path, params, [], {"rateLimit": message}), headers
        if kind == "requests":
            return (
                200,
                self._envelope(path, params, [], {"requests": MESSAGES["requests"]}),
                headers,
            )
        unknown = sorted(set(params) - ALLOWED.get(path, set()))
        if path not in ALLOWED:
            return 404, {"message": "Endpoint not found"}, headers
        if unknown:
            errors = {name: f"The {name} field do not exist." for name in unknown}
            return 200, self._envelope(path, params, [], errors), headers
        try:
            response, paging = self._answer(path, params)
        except _ParamError as exc:
            return 200, self._envelope(path, params, [], {exc.name: exc.message}), headers
        return 200, self._envelope(path, params, response, [], paging), headers

    def _fault_answer(self, path: str, params: dict[str, str], fault: Fault):
        headers = self._quota_headers(self.config.per_day, self.config.per_minute)
        if fault.kind == "malformed":
            return fault.status, b'<html><body>502 Bad Gateway</body></html>{"errors":', headers
        if fault.kind == "http":
            return fault.status or 500, b"Internal Server Error", headers
        if fault.kind == "rateLimit":
            headers = self._quota_headers(self.config.per_day, 0)
        message = fault.message or MESSAGES.get(
            fault.kind,
            f"Too many requests. Your rate limit is {self.config.per_minute} requests per minute.",
        )
        errors: Any = {fault.kind: message}
        if fault.form == "list":
            errors = [errors]
        return fault.status, self._envelope(path, params, [], errors), headers

    @staticmethod
    def _envelope(path, params, response, errors, paging=(1, 1)) -> dict[str, Any]:
        return {
            "get": path.strip("/"),
            "parameters": params,
            "errors": errors,
            "results": len(response),
            "paging": {"current": paging[0], "total": paging[1]},
            "response": response,
        }

    def _answer(self, path: str, params: dict[str, str]) -> tuple[list[Any], tuple[int, int]]:
        now, speed = self.now(), self.config.speed
        with self._lock:
            world = self.world
        leagues = {league["id"]: league for league in world.leagues}
        if path == "/leagues":
            return self._leagues(world, params), (1, 1)
        if path == "/odds/bets":
            return [{"id": i, "name": n} for i, n in BETS.items()], (1, 1)
        if path == "/odds/bookmakers":
            return [{"id": i, "name": n} for i, n in BOOKMAKERS.items()], (1, 1)
        plans = self._select(world, params, now, speed, odds=path == "/odds")
        if path == "/fixtures":
            return [fixture_json(p, leagues[p.league_id], now, speed) for p in plans], (1, 1)
        page = _int_param(params, "page", 1)
        total = max(1, -(-len(plans) // ODDS_PAGE_SIZE))
        chunk = plans[(page - 1) * ODDS_PAGE_SIZE : page * ODDS_PAGE_SIZE]
        period = max(1.0, self.config.odds_period_seconds)
        version = int((now - world.started_at).total_seconds() // period)
        updated = world.started_at + timedelta(seconds=version * period)
        bookmaker = _int_param(params, "bookmaker", 0) or None
        bet = _int_param(params, "bet", 0) or None
        answer = [
            odds_json(p, leagues[p.league_id], version=version, updated=updated,
                      bookmaker=bookmaker, bet=bet)
            for p in chunk
        ]  # fmt: skip
        return answer, (page, total)

    def _leagues(self, world: World, params: dict[str, str]) -> list[dict[str, Any]]:
        wanted = _int_param(params, "id", 0)
        season = _int_param(params, "season", 0)
        result = []
        for league in world.leagues:
            if wanted and league["id"] != wanted:
                continue
            if season and league["season"] != season:
                continue
            result.append(
                {
                    "league": {
                        "id": league["id"],
                        "name": league["name"],
                        "type": "League",
                        "logo": f"https://media.api-sports.io/football/leagues/{league['id']}.png",
                    },
                    "country": {"name": league["country"], "code": None, "flag": None},
                    "seasons": [
                        {
                            "year": league["season"],
                            "start": f"{league['season']}-01-01",
                            "end": f"{league['season']}-12-31",
                            "current": True,
                            "coverage": {"odds": True, "fixtures": {"events": True}},
                        }
                    ],
                }
            )
        return result

    def _select(self, world: World, params, now: datetime, speed: float, *, odds: bool):
        plans = list(world.plans)
        if "ids" in params:
            ids = [_int_value("ids", part) for part in params["ids"].split("-") if part]
            if len(ids) > MAX_IDS:
                raise _ParamError("ids", f"Maximum of {MAX_IDS} fixtures ids")
            plans = [p for p in plans if p.fixture_id in set(ids)]
        for name in ("id", "fixture"):
            if name in params:
                wanted = _int_param(params, name, 0)
                plans = [p for p in plans if p.fixture_id == wanted]
        if "league" in params:
            if "season" not in params and not odds:
                raise _ParamError("season", "The Season field is required.")
            league = _int_param(params, "league", 0)
            plans = [p for p in plans if p.league_id == league]
        if "season" in params:
            season = _int_param(params, "season", 0)
            plans = [p for p in plans if p.season == season]
        if "date" in params:
            plans = [p for p in plans if p.kickoff.strftime("%Y-%m-%d") == params["date"]]
        if "from" in params:
            plans = [p for p in plans if p.kickoff.strftime("%Y-%m-%d") >= params["from"]]
        if "to" in params:
            plans = [p for p in plans if p.kickoff.strftime("%Y-%m-%d") <= params["to"]]
        if params.get("live") or "status" in params:
            live = {"1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE"}
            wanted_statuses = set(params["status"].split("-")) if "status" in params else live
            plans = [p for p in plans if state_at(p, now, speed)["short"] in wanted_statuses]
        if not params.keys() & {"ids", "id", "fixture", "league", "date", "live", "team"}:
            raise _ParamError("required", "At least one parameter is required.")
        return sorted(plans, key=lambda p: (p.kickoff, p.fixture_id))

    # --- controls and WSGI ------------------------------------------------------------------------
    def _controls(self, method: str, action: str, data: Any, query: dict) -> tuple[int, Any]:
        if (method, action) == ("GET", "state"):
            return 200, self.state()
        if (method, action) == ("GET", "requests"):
            with self._lock:
                return 200, {"requests": list(self.requests)}
        if (method, action) == ("POST", "faults"):
            added = [Fault(**raw) for raw in data.get("faults", [data] if "kind" in data else [])]
            with self._lock:
                self.faults.extend(added)
                return 200, {"faults": [asdict(f) for f in self.faults]}
        if (method, action) == ("DELETE", "faults"):
            with self._lock:
                self.faults.clear()
            return 200, {"faults": []}
        if (method, action) == ("POST", "scenario"):
            world = self.load_scenario(data)
            return 200, {"fixtures": len(world.plans), "leagues": len(world.leagues)}
        if (method, action) == ("DELETE", "scenario"):
            world = self.load_scenario(None)
            return 200, {"fixtures": len(world.plans), "leagues": len(world.leagues)}
        if (method, action) == ("POST", "config"):
            with self._lock:
                self.config.update(data)
            return 200, asdict(self.config)
        if (method, action) == ("POST", "clock"):
            with self._lock:
                self.clock_offset += float(data.get("advance_seconds", 0))
            return 200, {"now": self.now().isoformat()}
        if (method, action) == ("POST", "reset"):
            with self._lock:
                self.requests.clear()
                self.faults.clear()
                self._minute.clear()
                self._day = ("", 0)
                self.counters = dict.fromkeys(self.counters, 0)
            return 200, {"ok": True}
        return 404, {"error": f"no control {method} {action}"}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        headers: list[tuple[str, str]] = []
        if path.startswith("/sandbox/football/"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length > 0 else b""
                data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
                action = path.removeprefix("/sandbox/football/").strip("/")
                status, body = self._controls(method, action, data, {})
            except (TypeError, ValueError, KeyError, OSError) as exc:
                status, body = 400, {"error": str(exc)}
        elif method != "GET":
            status, body = 405, {"message": "Method not allowed"}
        else:
            status, body, headers = self.api(path.rstrip("/") or "/", environ)
        payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        content_type = "application/json" if not isinstance(body, bytes) else "text/html"
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", content_type), ("Content-Length", str(len(payload))), *headers],
        )
        return [payload]


class _ParamError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


def _int_value(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise _ParamError(name, f"The {name.capitalize()} field must contain an integer.") from exc


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    return _int_value(name, params[name]) if params.get(name) not in (None, "") else default
