"""A fake API-Football v3 for the demo and the tests: `make_server(host, port)`.

Leagues, fixtures that play out on a sped-up clock, odds, rate limits and error forms as the
real API answers them, fault injection and scenario files (docs/football_data.md). Served by
`manage.py run_sandboxes` (settings.SANDBOX_SERVERS) on APIFOOTBALL_SANDBOX_PORT.
"""

from __future__ import annotations

import logging
from typing import Any

from football_data_app.sandbox.app import FootballSandbox, SandboxConfig
from whatsappcrm_backend.sandbox_server import SandboxServer, sandbox_server

__all__ = ["FootballSandbox", "SandboxConfig", "SandboxServer", "make_server"]

logger = logging.getLogger(__name__)


def make_server(host: str, port: int, **config: Any) -> SandboxServer:
    """A threaded server (serve_forever()/shutdown()); `server.sandbox` is the app and state.

    `config` overrides SandboxConfig fields (defaults come from Django settings when set).
    Port 0 picks a free port: read it back from `server.server_port`.
    """
    sandbox = FootballSandbox(SandboxConfig.from_settings(**config))
    return sandbox_server(host, port, sandbox, logger)
