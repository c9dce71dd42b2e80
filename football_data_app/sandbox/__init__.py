"""A fake API-Football v3 for the demo and the tests: `make_server(host, port)`.

Leagues, fixtures that play out on a sped-up clock, odds, rate limits and error forms as the
real API answers them, fault injection and scenario files (docs/football_data.md). Served by
`manage.py run_sandboxes` (settings.SANDBOX_SERVERS) on APIFOOTBALL_SANDBOX_PORT.
"""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgi_server

from football_data_app.sandbox.app import FootballSandbox, SandboxConfig

__all__ = ["FootballSandbox", "SandboxConfig", "SandboxServer", "make_server"]

logger = logging.getLogger(__name__)


class SandboxServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: FootballSandbox


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("football sandbox %s %s", self.address_string(), format % args)


def make_server(host: str, port: int, **config: Any) -> SandboxServer:
    """A threaded server (serve_forever()/shutdown()); `server.sandbox` is the app and state.

    `config` overrides SandboxConfig fields (defaults come from Django settings when set).
    Port 0 picks a free port: read it back from `server.server_port`.
    """
    sandbox = FootballSandbox(SandboxConfig.from_settings(**config))
    server = _wsgi_server(
        host, port, sandbox, server_class=SandboxServer, handler_class=_QuietHandler
    )
    server.sandbox = sandbox
    return server
