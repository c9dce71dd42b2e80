"""Load from outside: signed webhook POSTs on an open-loop schedule, replies read back from the
sandbox, and the accounting (sent, replied, duplicated, lost) every benchmark and drill reports.

Needs Django set up for the stack (Stack.start does it): the secret and the number's ids come
from settings, the bodies from meta_integration.simulation / envelopes, as Meta shapes them.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bench.stack import percentiles


def session(pool: int = 64) -> requests.Session:
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool)
    s.mount("http://", adapter)
    return s


class Sandbox:
    """The Graph sandbox's test controls (meta_integration/sandbox/app.py)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = session(8)

    def _call(self, method: str, action: str, **kwargs: Any) -> Any:
        response = self.http.request(
            method, f"{self.url}/sandbox/meta/{action}", timeout=30, **kwargs
        )
        response.raise_for_status()
        return response.json()

    def sent(self, since: float = 0.0) -> list[dict[str, Any]]:
        return self._call("GET", "sent", params={"since": since})["messages"]

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def config(self, **values: Any) -> None:
        self._call("POST", "config", json=values)

    def faults(self, **values: Any) -> None:
        self._call("POST", "faults", json=values)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def reset(self) -> None:
        self._call("POST", "reset")


class Webhook:
    def __init__(self, url: str, pool: int = 64) -> None:
        from django.conf import settings

        self.url = url
        self.secret = settings.META_APP_SECRET
        self.http = session(pool)
        self.client_errors: Counter[str] = Counter()  # code 0 answers, by exception

    def post(
        self, body: bytes, *, signed: bool = True, headers: dict[str, str] | None = None
    ) -> tuple[int, float]:
        """(HTTP status or 0 for a connection error, milliseconds to the answer)."""
        from meta_integration.signatures import HEADER, sign

        sent_headers = {"Content-Type": "application/json"}
        if signed:
            sent_headers[HEADER] = sign(body, self.secret)
        sent_headers.update(headers or {})
        started = time.perf_counter()
        try:
            status = self.http.post(
                self.url, data=body, headers=sent_headers, timeout=30, allow_redirects=False
            )
            code = status.status_code
        except requests.RequestException as exc:
            code = 0
            self.client_errors[type(exc).__name__] += 1
        return code, (time.perf_counter() - started) * 1000.0


def open_loop(calls: list[tuple[float, Any]], workers: int = 64) -> list[Any]:
    """Run each `(offset_seconds, fn)` at its offset from now, whatever the answers' pace
    (open loop: a slow server does not slow the arrivals). Returns the results in order."""
    results: list[Any] = [None] * len(calls)
    start = time.monotonic()

    def run(index: int, fn: Any) -> None:
        results[index] = fn()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, (offset, fn) in enumerate(calls):
            delay = start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(run, index, fn)
    return results


def text_body(user, wamid: str, text: str) -> bytes:
    from django.conf import settings

    from meta_integration import envelopes, simulation

    event = simulation.text_event(
        user=user,
        wamid=wamid,
        text=text,
        timestamp=int(time.time()),
        phone_number_id=settings.META_PHONE_NUMBER_ID,
        display_phone_number=settings.META_DISPLAY_PHONE_NUMBER,
        waba_id=settings.META_WABA_ID,
    )
    return envelopes.encode_event(event)


def status_body(wamid: str, status: str, recipient: str, biz: str = "") -> bytes:
    from django.conf import settings

    from meta_integration.envelopes import encode_event
    from meta_integration.sandbox.callbacks import status_event

    return encode_event(
        status_event(
            waba_id=settings.META_WABA_ID,
            phone_number_id=settings.META_PHONE_NUMBER_ID,
            display_phone_number=settings.META_DISPLAY_PHONE_NUMBER,
            wamid=wamid,
            status=status,
            recipient=recipient,
            biz_opaque_callback_data=biz,
        )
    )


@dataclass
class ChatRun:
    """One open-loop chat: what was posted, what the webhook answered, what came back."""

    posted_at: dict[str, float] = field(default_factory=dict)
    acks: list[tuple[int, float]] = field(default_factory=list)
    redelivered: int = 0
    started: float = 0.0
    finished_posting: float = 0.0
    report: Any = None
    outbound_per_inbound: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ack_ms(self) -> dict[str, float]:
        return percentiles([ms for _, ms in self.acks]) if self.acks else {}

    @property
    def non_200(self) -> int:
        return sum(1 for code, _ in self.acks if code != 200)

    @property
    def non_200_codes(self) -> dict[int, int]:
        """Each non-200 answer by status; 0 is the client's own error (a timeout, a reset)."""
        return dict(Counter(code for code, _ in self.acks if code != 200))

    def accounting(self) -> dict[str, Any]:
        report = self.report
        return {
            "sent": report.sent,
            "redelivered": self.redelivered,
            "replied": report.replied,
            "duplicated": len(report.duplicated),
            "lost": len(report.missing),
            "non_200": self.non_200,
        }

    def completion_rate(self) -> float:
        """Replies per second from the first POST to the last reply (the served rate, which
        under overload is the capacity: compare it with the capacity model's ceiling)."""
        missing = set(self.report.missing)
        answered = [w for w in self.posted_at if w not in missing]
        if not answered:
            return 0.0
        ends = [
            self.posted_at[w] + ms / 1000.0
            for w, ms in zip(answered, self.report.latencies_ms, strict=False)
        ]
        span = max(ends) - min(self.posted_at.values())
        return len(answered) / span if span > 0 else 0.0

    def latency(self) -> dict[str, float]:
        return percentiles(self.report.latencies_ms) if self.report.latencies_ms else {}


def chat(
    *,
    webhook: Webhook,
    sandbox: Sandbox,
    users: int,
    rate: float,
    messages: int,
    duplicates: float = 0.0,
    timeout: float = 120.0,
    seed: int | None = None,
    during=None,
) -> ChatRun:
    """`messages` inbound texts from `users` customers at `rate` per second (open loop), a
    fraction redelivered (same bytes, 0-0.5 s later), then wait for every reply.

    `during(run)`, if given, runs in a thread while the messages are being posted (a drill's
    fault: kill a worker, stop Redis)."""
    from meta_integration import simulation

    rng = random.Random(seed)
    plan = simulation.plan_messages(simulation.make_users(users, rng), messages, rng)
    run = ChatRun(started=time.time())
    lock = threading.Lock()

    def make_call(wamid: str, body: bytes, redeliver_after: float | None):
        def call() -> None:
            with lock:
                run.posted_at.setdefault(wamid, time.time())
            answer = webhook.post(body)
            with lock:
                run.acks.append(answer)
            if redeliver_after is not None:
                time.sleep(redeliver_after)
                again = webhook.post(body)
                with lock:
                    run.acks.append(again)
                    run.redelivered += 1

        return call

    calls = []
    for index, (user, text) in enumerate(plan):
        wamid = simulation.new_wamid(rng)
        redeliver = rng.uniform(0, 0.5) if rng.random() < duplicates else None
        calls.append((index / rate, make_call(wamid, text_body(user, wamid, text), redeliver)))
    fault = None
    if during is not None:
        fault = threading.Thread(target=during, args=(run,), daemon=True)
        fault.start()
    open_loop(calls)
    run.finished_posting = time.time()
    if fault is not None:
        fault.join()
    run.report = collect(sandbox, run.posted_at, run.started, timeout)
    return run


def collect(sandbox: Sandbox, posted_at: dict[str, float], since: float, timeout: float) -> Any:
    """Poll the sandbox until every posted message has its reply (or the timeout), then a
    little longer so a reply sent twice is seen. Returns simulation.Report."""
    from meta_integration import simulation

    deadline = time.time() + timeout
    report = simulation.correlate(posted_at, [])
    while time.time() < deadline:
        try:
            report = simulation.correlate(posted_at, sandbox.sent(since - 1))
        except requests.RequestException:
            time.sleep(1.0)
            continue
        if not report.missing:
            break
        time.sleep(0.5)
    time.sleep(2.0)
    messages = sandbox.sent(since - 1)
    report = simulation.correlate(posted_at, messages)
    report.extra_messages = sum(
        1
        for m in messages
        if (m.get("biz_opaque_callback_data") or "").rpartition(":")[0] in posted_at
    )
    return report


def fmt(figures: dict[str, float], keys=("p50", "p99", "max")) -> str:
    return ", ".join(f"{k} {figures[k]:.0f} ms" for k in keys if k in figures)
