"""The threaded WSGI server every integration's sandbox runs in (`manage.py run_sandboxes`)."""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


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
