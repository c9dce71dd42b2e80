"""Fixtures of the football tests: the API-Football sandbox on a free port, pointed at.

Nothing patches the client: tests speak HTTP to a real sandbox server started in this process
(the same code `make run` serves). Redis is flushed (redis_conn) because the shared limiter
and the fan-out guards keep their state there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from football_data_app.sandbox import FootballSandbox, SandboxServer, make_server

KEY = "test-apifootball-key"


@dataclass
class FootballSandboxHandle:
    server: SandboxServer

    @property
    def app(self) -> FootballSandbox:
        return self.server.sandbox

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def control(self, method: str, action: str, body: Any = None) -> Any:
        response = requests.request(
            method, f"{self.url}/sandbox/football/{action}", json=body, timeout=5
        )
        response.raise_for_status()
        return response.json()

    def fault(self, kind: str, **rule: Any) -> None:
        self.control("POST", "faults", {"faults": [{"kind": kind, **rule}]})

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.control("GET", "requests")["requests"] if r["path"] == path]

    def state(self) -> dict[str, Any]:
        return self.control("GET", "state")


def start_football_sandbox(**config: Any) -> FootballSandboxHandle:
    config.setdefault("keys", [KEY])
    server = make_server("127.0.0.1", 0, **config)
    threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="football-sandbox",
        daemon=True,
    ).start()
    return FootballSandboxHandle(server)


@pytest.fixture
def football_sandbox(settings, redis_conn) -> Iterator[FootballSandboxHandle]:
    """A fake API-Football on a free port; this process's client points at it."""
    handle = start_football_sandbox()
    settings.APIFOOTBALL_BASE_URL = handle.url
    settings.APIFOOTBALL_KEY = KEY
    settings.APIFOOTBALL_REQUESTS_PER_MINUTE = 6000
    yield handle
    handle.server.shutdown()
    handle.server.server_close()


def scenario(*fixtures: dict[str, Any], league: int = 39, season: int = 2026) -> dict[str, Any]:
    """A scenario body: one league and the given fixtures (see docs/football_data.md)."""
    return {
        "season": season,
        "leagues": [{"id": league, "name": "Scenario League", "country": "Testland"}],
        "fixtures": [{"league": league, **f} for f in fixtures],
    }
