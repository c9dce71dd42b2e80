"""A local HTTP server for tests that stands in for someone else's endpoint.

It records every POST (headers, body) and answers with `respond(headers, body)`, which returns
(status, content_type, body); the default answers 200 with no body.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer

Responder = Callable[[dict, bytes], tuple[int, str, bytes]]


def answer_ok(headers: dict, body: bytes) -> tuple[int, str, bytes]:
    return 200, "text/plain", b""


class StubHTTPServer:
    def __init__(self, respond: Responder = answer_ok, path: str = "") -> None:
        self.posts: list[tuple[dict, bytes]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.posts.append((dict(self.headers), body))
                status, content_type, answer = respond(dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
