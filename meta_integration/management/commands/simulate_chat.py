"""Simulated customers chatting through the real webhook, replies read back from the sandbox.

    manage.py simulate_chat --users 20 --messages 200 --rate 20 --duplicates 0.3

Posts signed, real-shaped webhook events (unique wamids, contacts[0].user_id) at about
--rate messages per second in total, redelivers a fraction of them (same body again), waits
for each message's reply in the sandbox (/sandbox/meta/sent) and prints sent / replied /
missing / duplicated counts and reply latency percentiles. Exits non-zero when a message got
no reply or a reply was sent twice.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from requests.adapters import HTTPAdapter

from meta_integration import envelopes, simulation
from meta_integration.signatures import HEADER, sign


class Command(BaseCommand):
    help = "Simulate WhatsApp customers against the webhook and report replies and latency."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=10, help="simulated customers")
        parser.add_argument(
            "--messages", type=int, default=30, help="messages in total, spread over the customers"
        )
        parser.add_argument("--rate", type=float, default=10.0, help="messages per second, total")
        parser.add_argument(
            "--duplicates", type=float, default=0.0, help="fraction of POSTs redelivered (0..1)"
        )
        parser.add_argument("--webhook-url", default=settings.META_SANDBOX_WEBHOOK_URL)
        parser.add_argument(
            "--sandbox-url",
            default=f"http://{settings.META_SANDBOX_HOST}:{settings.META_SANDBOX_PORT}",
        )
        parser.add_argument(
            "--timeout", type=float, default=60.0, help="seconds to wait for replies"
        )
        parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")

    def handle(self, *args: Any, **options: Any) -> None:
        report = self.simulate(
            users=options["users"],
            messages=options["messages"],
            rate=options["rate"],
            duplicates=options["duplicates"],
            webhook_url=options["webhook_url"],
            sandbox_url=options["sandbox_url"].rstrip("/"),
            timeout=options["timeout"],
            seed=options["seed"],
        )
        self.stdout.write(simulation.format_report(report))
        if not report.ok:
            self.stderr.write(
                f"missing: {report.missing[:10]} duplicated: {report.duplicated[:10]}"
            )
            raise SystemExit(1)

    def simulate(
        self,
        *,
        users: int,
        messages: int,
        rate: float,
        duplicates: float,
        webhook_url: str,
        sandbox_url: str,
        timeout: float,
        seed: int | None,
    ) -> simulation.Report:
        rng = random.Random(seed)
        session = requests.Session()
        session.mount("http://", HTTPAdapter(pool_maxsize=32))
        session.mount("https://", HTTPAdapter(pool_maxsize=32))
        plan = simulation.plan_messages(simulation.make_users(users, rng), messages, rng)
        posted_at: dict[str, float] = {}
        errors = {"webhook": 0, "redelivered": 0}
        lock = threading.Lock()
        start = time.time()

        def post(wamid: str, body: bytes, redeliver_after: float | None) -> None:
            headers = {
                "Content-Type": "application/json",
                HEADER: sign(body, settings.META_APP_SECRET),
            }
            with lock:
                posted_at.setdefault(wamid, time.time())
            ok = self._post(session, webhook_url, body, headers)
            if redeliver_after is not None:
                time.sleep(redeliver_after)
                ok = self._post(session, webhook_url, body, headers) and ok
                with lock:
                    errors["redelivered"] += 1
            if not ok:
                with lock:
                    errors["webhook"] += 1

        interval = 1.0 / rate if rate > 0 else 0.0
        with ThreadPoolExecutor(max_workers=32) as pool:
            futures = []
            for index, (user, text) in enumerate(plan):
                delay = start + index * interval - time.time()
                if delay > 0:
                    time.sleep(delay)
                wamid = simulation.new_wamid(rng)
                event = simulation.text_event(
                    user=user,
                    wamid=wamid,
                    text=text,
                    timestamp=int(time.time()),
                    phone_number_id=settings.META_PHONE_NUMBER_ID,
                    display_phone_number=settings.META_DISPLAY_PHONE_NUMBER,
                    waba_id=settings.META_WABA_ID,
                )
                redeliver = rng.uniform(0, 0.5) if rng.random() < duplicates else None
                futures.append(pool.submit(post, wamid, envelopes.encode_event(event), redeliver))
            wait(futures)
        self.stdout.write(f"posted {len(plan)} messages in {time.time() - start:.1f}s; waiting")

        report = self._collect(session, sandbox_url, posted_at, start, timeout)
        report.webhook_errors = errors["webhook"]
        report.redelivered = errors["redelivered"]
        return report

    def _post(self, session: requests.Session, url: str, body: bytes, headers: dict) -> bool:
        try:
            return session.post(url, data=body, headers=headers, timeout=10).status_code == 200
        except requests.RequestException as exc:
            self.stderr.write(f"webhook POST failed: {exc}")
            return False

    def _collect(
        self,
        session: requests.Session,
        sandbox_url: str,
        posted_at: dict[str, float],
        start: float,
        timeout: float,
    ) -> simulation.Report:
        deadline = time.time() + timeout
        report = simulation.correlate(posted_at, [])
        while time.time() < deadline:
            report = simulation.correlate(posted_at, self._sent(session, sandbox_url, start))
            if not report.missing:
                break
            time.sleep(0.5)
        # A little longer: a reply sent twice may trail the first one.
        time.sleep(1.0)
        return simulation.correlate(posted_at, self._sent(session, sandbox_url, start))

    def _sent(self, session: requests.Session, sandbox_url: str, since: float) -> list[dict]:
        try:
            response = session.get(
                f"{sandbox_url}/sandbox/meta/sent", params={"since": since - 1}, timeout=10
            )
            return response.json().get("messages", [])
        except (requests.RequestException, ValueError) as exc:
            self.stderr.write(f"sandbox poll failed: {exc}")
            return []
