"""The per-number rate limit holds across workers: two threads share one Redis key."""

from __future__ import annotations

import bisect
import threading
import time

import pytest

from meta_integration import ratelimit

pytestmark = pytest.mark.usefixtures("redis_conn")

RATE = 20


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered))


def test_two_workers_together_stay_under_the_rate():
    key = ratelimit.phone_number_key("106540352242922")
    granted_at: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            ok, _ = ratelimit.acquire(key, rate=RATE, max_wait=5.0)
            assert ok
            with lock:
                granted_at.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    assert len(granted_at) == 50
    # 50 slots 1/20 s apart take at least 49/20 s, and no second holds more than 20 (+1 for
    # the jitter of waking threads) sends.
    assert elapsed >= 49 / RATE - 0.05
    assert max_in_any_window(granted_at) <= RATE + 1


def test_a_wait_longer_than_allowed_reserves_nothing():
    key = "wcrm:ratelimit:test"
    assert ratelimit.reserve(key, rate=1, max_wait=0.0) == (True, 0.0)
    granted, wait = ratelimit.reserve(key, rate=1, max_wait=0.5)
    assert not granted and 0.5 < wait <= 1.0
    granted, wait2 = ratelimit.reserve(key, rate=1, max_wait=0.5)
    assert not granted and wait2 <= wait  # the refused call took no slot


def test_numbers_are_limited_separately():
    assert ratelimit.acquire(ratelimit.phone_number_key("a"), rate=1, max_wait=0)[0]
    assert ratelimit.acquire(ratelimit.phone_number_key("b"), rate=1, max_wait=0)[0]
    assert not ratelimit.acquire(ratelimit.phone_number_key("a"), rate=1, max_wait=0)[0]
