"""What every integration's sandbox shares: its threaded WSGI server (`manage.py
run_sandboxes`) and the plumbing of its config (defaults from Django settings, live updates)."""

from __future__ import annotations

import logging
from dataclasses import fields
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


def django_setting(name: str, default: Any) -> Any:
    """Defaults may come from Django settings when they are configured; never required."""
    try:
        from django.conf import settings

        if settings.configured:
            return getattr(settings, name, default)
    except ImportError:
        pass
    return default


class UpdatableConfig:
    """For a sandbox's config dataclass: change fields at run time, refusing unknown names."""

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}  # type: ignore[arg-type]
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown sandbox settings: {sorted(unknown)}")
        for name, value in values.items():
            setattr(self, name, value)


class SandboxServer(ThreadingMixIn, WSGIServer):
    """serve_forever()/shutdown(); `sandbox` is the app and its state, for tests to drive."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: Any


def sandbox_server(host: str, port: int, sandbox: Any, logger: logging.Logger) -> SandboxServer:
    """Serve `sandbox` (a WSGI app); its access log goes to `logger` at DEBUG.

    Port 0 picks a free port: read it back from `server.server_port`.
    """

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

    server = make_server(
        host, port, sandbox, server_class=SandboxServer, handler_class=QuietHandler
    )
    server.sandbox = sandbox
    return server
