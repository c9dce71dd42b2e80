"""Profiling hooks for the web and worker processes under load (pyinstrument, query counts).

Web: gunicorn serves `bench.profiling:web_application`, the project's WSGI app wrapped so
each request runs under its own pyinstrument profiler and a query counter; the sessions are
combined per process and written to $BENCH_PROFILE_DIR every 50 requests.
Worker: `python -m bench.profiling <celery argv>` connects task_prerun/task_postrun handlers
(inherited by the prefork children) that do the same per task, grouped by task name.
Nothing here is imported by the project itself.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import sys
import threading
from collections import defaultdict
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.session import Session

OUT = Path(os.environ.get("BENCH_PROFILE_DIR", "/tmp"))
FLUSH_EVERY = 25


class Aggregate:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.lock = threading.Lock()
        self.sessions: dict[str, Session] = {}
        self.queries: dict[str, list[int]] = defaultdict(list)
        self.count = 0

    def add(self, label: str, session: Session, counter: QueryCounter) -> None:
        with self.lock:
            previous = self.sessions.get(label)
            self.sessions[label] = (
                session if previous is None else Session.combine(previous, session)
            )
            self.queries[label].append((counter.count, counter.writes))
            self.count += 1
            if self.count % FLUSH_EVERY == 0:
                self.flush()

    def flush(self) -> None:
        pid = os.getpid()
        summary = {}
        for label, session in self.sessions.items():
            safe = label.replace("/", "_").strip("_") or "root"
            text = Profiler_from(session).output_text(unicode=False, color=False, show_all=False)
            (OUT / f"{self.kind}-{safe}-{pid}.txt").write_text(text)
            full = Profiler_from(session).output_text(unicode=False, color=False, show_all=True)
            (OUT / f"all-{self.kind}-{safe}-{pid}.txt").write_text(full)
            values = self.queries[label]
            summary[label] = {
                "count": len(values),
                "queries_mean": sum(q for q, _ in values) / len(values),
                "queries_max": max(q for q, _ in values),
                "writes_mean": sum(w for _, w in values) / len(values),
                "cpu_s": session.cpu_time,
                "wall_s": session.duration,
            }
        (OUT / f"{self.kind}-summary-{pid}.json").write_text(json.dumps(summary, indent=1))


def Profiler_from(session: Session) -> Profiler:
    profiler = Profiler()
    profiler._last_session = session
    return profiler


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0
        self.writes = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        if sql.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}:
            self.writes += 1
        return execute(sql, params, many, context)


def _label_request(environ: dict, status: str, raw: bytes) -> str:
    path = environ.get("PATH_INFO", "")
    kind = ""
    if "webhooks" in path:
        kind = " status" if b'"statuses"' in raw else " message" if b'"messages"' in raw else ""
    return f"{environ.get('REQUEST_METHOD')} {path} {status[:3]}{kind}"


_web = Aggregate("web")
atexit.register(_web.flush)  # gunicorn workers exit through sys.exit on SIGTERM


class _Body(list):
    """The response, with the app's own close() (work done after the answer is sent: the
    webhook publishes there) run inside the same profile when the server closes it."""

    def __init__(self, chunks, on_close) -> None:
        super().__init__(chunks)
        self._on_close = on_close

    def close(self) -> None:
        self._on_close()


def web_application(environ, start_response):
    from django.db import connection

    from whatsappcrm_backend.wsgi import application

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    counter = QueryCounter()
    seen = {"status": "000"}
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(raw)

    def capture(status, headers, exc_info=None):
        seen["status"] = status
        return start_response(status, headers, exc_info)

    wrapper = connection.execute_wrapper(counter)
    profiler.start()
    wrapper.__enter__()
    try:
        result = application(environ, capture)
        chunks = list(result)
    except BaseException:
        wrapper.__exit__(None, None, None)
        profiler.stop()
        raise

    def finish() -> None:
        try:
            if hasattr(result, "close"):
                result.close()
        finally:
            wrapper.__exit__(None, None, None)
            session = profiler.stop()
            _web.add(_label_request(environ, seen["status"], raw), session, counter)

    return _Body(chunks, finish)


def install_worker_hooks() -> None:
    from celery.signals import task_postrun, task_prerun, worker_process_shutdown

    aggregate = Aggregate("worker")
    running: dict[str, tuple[Profiler, QueryCounter, object]] = {}

    @task_prerun.connect(weak=False)
    def start(task_id=None, task=None, **_):
        from django.db import connection

        counter = QueryCounter()
        wrapper = connection.execute_wrapper(counter)
        wrapper.__enter__()
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        running[task_id] = (profiler, counter, wrapper)

    @task_postrun.connect(weak=False)
    def stop(task_id=None, task=None, **_):
        entry = running.pop(task_id, None)
        if entry is None:
            return
        profiler, counter, wrapper = entry
        session = profiler.stop()
        wrapper.__exit__(None, None, None)
        aggregate.add(task.name if task else "?", session, counter)

    @worker_process_shutdown.connect(weak=False)
    def flush(**_):
        aggregate.flush()


if __name__ == "__main__":
    install_worker_hooks()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    main()
