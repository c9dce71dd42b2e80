"""A fake WhatsApp Cloud (Graph) API for the demo and the tests: `make_server(host, port)`.

It validates sends like Meta, answers with Meta's shapes and codes, enforces the pair and
throughput limits, injects faults on demand and calls the webhook back with signed statuses.
Served by `manage.py run_sandboxes` (settings.SANDBOX_SERVERS) on META_SANDBOX_PORT.
"""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgi_server

from meta_integration.sandbox.app import GraphSandbox, SandboxConfig

__all__ = ["GraphSandbox", "SandboxConfig", "SandboxServer", "make_server"]

logger = logging.getLogger(__name__)


class SandboxServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: GraphSandbox


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox %s %s", self.address_string(), format % args)


def make_server(host: str, port: int, **config: Any) -> SandboxServer:
    """A threaded server (serve_forever()/shutdown()); `server.sandbox` is the app and state.

    `config` overrides SandboxConfig fields (defaults come from Django settings when set).
    Port 0 picks a free port: read it back from `server.server_port`.
    """
    sandbox = GraphSandbox(SandboxConfig.from_settings(**config))
    server = _wsgi_server(
        host, port, sandbox, server_class=SandboxServer, handler_class=_QuietHandler
    )
    server.sandbox = sandbox
    return server
