"""A fake WhatsApp Cloud (Graph) API for the demo and the tests: `make_server(host, port)`.

It validates sends like Meta, answers with Meta's shapes and codes, enforces the pair and
throughput limits, injects faults on demand and calls the webhook back with signed statuses.
Served by `manage.py run_sandboxes` (settings.SANDBOX_SERVERS) on META_SANDBOX_PORT.
"""

from __future__ import annotations

import logging
from typing import Any

from meta_integration.sandbox.app import GraphSandbox, SandboxConfig
from whatsappcrm_backend.sandbox_server import SandboxServer, sandbox_server

__all__ = ["GraphSandbox", "SandboxConfig", "SandboxServer", "make_server"]

logger = logging.getLogger(__name__)


def make_server(host: str, port: int, **config: Any) -> SandboxServer:
    """A threaded server (serve_forever()/shutdown()); `server.sandbox` is the app and state.

    `config` overrides SandboxConfig fields (defaults come from Django settings when set).
    Port 0 picks a free port: read it back from `server.server_port`.
    """
    sandbox = GraphSandbox(SandboxConfig.from_settings(**config))
    return sandbox_server(host, port, sandbox, logger)
