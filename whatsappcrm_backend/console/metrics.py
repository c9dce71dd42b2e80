"""The console's metrics store in Redis: task wait/run histograms, queue throughput, timings.

Stable API (helper pages and the JSON/Prometheus views read only through these functions):

- ``task_stats(window_seconds, queue=None) -> dict[task_name, dict]`` with ``count``,
  ``failures``, ``retries``, ``queues`` ({queue: count}), ``wait_p50/p95/p99`` and
  ``run_p50/p95/p99`` (milliseconds, None without samples).
- ``queue_throughput(queue, window_seconds) -> {"in": n, "out": n, "in_per_s", "out_per_s"}``
- ``queue_series(queue, minutes) -> list[{"minute": epoch, "in": n, "out": n}]`` (sparklines)
- ``last_consumed(queue) -> float | None``: epoch seconds a task of that queue last finished.
- ``task_timing(task_id) -> {"task", "queue", "wait_ms", "run_ms", "retries", "state",
  "finished_at"} | None``; kept ``OPS_TASK_TIMING_TTL_SECONDS`` (default a day).
- ``task_timings(task_ids) -> dict[task_id, timing]``: the same, many in one round trip.
- ``operation_stats(window_seconds) -> dict[name, {count, slow, p50, p95, p99, queries_p95...}]``
  for code wrapped in ``whatsappcrm_backend.instrumentation.instrumented``.

Writers: task runs (``buffer_task``, what the worker hooks call), publishes (``buffer_publish``)
and instrumented operations (``record_operation``) make NO Redis call: they add to an
in-process ``CounterBuffer`` that a daemon thread writes once a second in one pipelined call
(call ``buffer.flush()`` to write now), so the figures lag by up to a second and a killed
process loses at most its last second of them. ``record_task`` and ``record_publish`` write
one event directly, in one pipelined round trip (tests, benchmarks).

Storage, bounded by expiry (figures survive web and worker restarts because they live in Redis):
- ``ops:tp:{t//10}``  hash per 10-second slot: ``in|{queue}`` / ``out|{queue}`` counters.
- ``ops:h:{t//60}``   hash per minute: per ``{queue}|{task}`` fields ``c`` (count), ``f``
  (failures), ``r`` (retries), ``w{i}`` / ``x{i}`` (wait / run histogram bucket i); per
  instrumented operation ``op|{name}|c``, ``|s`` (slow), ``|d{i}`` (duration bucket),
  ``|q{i}`` (DB query count bucket).
- ``ops:last_out`` hash queue -> epoch of the last finished task.
- ``ops:tid:{task_id}`` JSON string with the task's own timing.
Every slot expires after ``OPS_METRICS_RETENTION_MINUTES`` (default 60).

Percentiles come from HISTOGRAMS with geometric bucket bounds (each bound 25% above the
previous, from 1 ms to about 1 hour), interpolated linearly inside the bucket: the figure is
within one bucket (+-25%) of the exact value, memory is a fixed number of small counters per
task per minute whatever the traffic, and minutes merge by adding counters.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

PREFIX = "ops:"
THROUGHPUT_SLOT_SECONDS = 10
HISTOGRAM_SLOT_SECONDS = 60
_GROWTH = 1.25
# Upper bounds in ms of buckets 0..N-1; bucket N (overflow) is everything above the last bound.
BOUNDS_MS: tuple[float, ...] = tuple(
    [0.5] + [round(_GROWTH**i, 3) for i in range(0, 70)]  # 1 ms .. ~6,000 s
)
_FIELD_SEP = "|"


def _redis():
    return get_redis_connection("default")


def retention_seconds() -> int:
    return int(getattr(settings, "OPS_METRICS_RETENTION_MINUTES", 60)) * 60


def timing_ttl_seconds() -> int:
    return int(getattr(settings, "OPS_TASK_TIMING_TTL_SECONDS", 24 * 3600))


def bucket_index(value_ms: float) -> int:
    """The histogram bucket of a value: the first bound >= value (overflow past the last)."""
    if value_ms <= BOUNDS_MS[0]:
        return 0
    # Geometric bounds: compute instead of searching, then fix rounding at the edges.
    index = max(1, math.ceil(math.log(value_ms) / math.log(_GROWTH)) + 1)
    index = min(index, len(BOUNDS_MS))
    while index > 1 and value_ms <= BOUNDS_MS[index - 1]:
        index -= 1
    while index < len(BOUNDS_MS) and value_ms > BOUNDS_MS[index]:
        index += 1
    return index


def percentile_from_histogram(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a bucketed histogram, interpolated inside its bucket."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        if seen + count >= rank:
            lower = 0.0 if index == 0 else BOUNDS_MS[index - 1]
            upper = BOUNDS_MS[index] if index < len(BOUNDS_MS) else BOUNDS_MS[-1] * _GROWTH
            fraction = (rank - seen) / count
            return round(lower + (upper - lower) * fraction, 2)
        seen += count
    return BOUNDS_MS[-1]


def _slot(now: float, size: int) -> int:
    return int(now // size)


def _f(*parts: str) -> str:
    return _FIELD_SEP.join(parts)


# --- writers (hot path: one pipelined round trip each) ---------------------------------------


def record_publish(queue: str, *, now: float | None = None, conn: Any = None) -> None:
    now = time.time() if now is None else now
    key = f"{PREFIX}tp:{_slot(now, THROUGHPUT_SLOT_SECONDS)}"
    pipe = (conn or _redis()).pipeline(transaction=False)
    pipe.hincrby(key, _f("in", queue), 1)
    pipe.expire(key, retention_seconds())
    pipe.execute()


@dataclasses.dataclass
class _Writes:
    """Redis writes waiting to go out: counters (HINCRBY, each key then EXPIREd), hash fields
    (HSET, the last value wins) and strings (SET with their own expiry)."""

    counts: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    fields: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    strings: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.counts) + len(self.fields) + len(self.strings)

    def merge(self, other: _Writes) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.fields.update(other.fields)
        self.strings.update(other.strings)

    def queue_on(self, pipe: Any) -> None:
        for (key, name), n in self.counts.items():
            pipe.hincrby(key, name, n)
        for key in {key for key, _ in self.counts}:
            pipe.expire(key, retention_seconds())
        for (key, name), value in self.fields.items():
            pipe.hset(key, name, value)
        for key, (value, ttl) in self.strings.items():
            pipe.set(key, value, ex=ttl)


class CounterBuffer:
    """Counters kept in process memory and written by a daemon thread once a second, in one
    pipelined call. Used where a Redis round trip per event would sit on a request's path (every
    publish, every instrumented call): such code then makes no Redis call at all, and a Redis
    outage cannot slow it down. The thread starts lazily in each process (a forked child starts
    its own); what is pending at exit is flushed by atexit."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._pending = _Writes()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def add(self, key: str, name: str, n: int = 1) -> None:
        with self._lock:
            counts = self._pending.counts
            counts[(key, name)] = counts.get((key, name), 0) + n
            self._start_in_this_process()

    def merge(self, writes: _Writes) -> None:
        with self._lock:
            self._pending.merge(writes)
            self._start_in_this_process()

    def _start_in_this_process(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="ops-metrics-flush", daemon=True).start()

    def flush(self, conn: Any = None) -> None:
        with self._lock:
            pending, self._pending = self._pending, _Writes()
        if not pending:
            return
        try:
            pipe = (conn or _redis()).pipeline(transaction=False)
            pending.queue_on(pipe)
            pipe.execute()
        except Exception:  # a metric must never fail the caller
            logger.debug("metrics: %d buffered writes dropped", len(pending), exc_info=True)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


buffer = CounterBuffer()
atexit.register(buffer.flush)


def buffer_publish(queue: str, *, now: float | None = None) -> None:
    """Count one publish (no Redis call here: see CounterBuffer)."""
    now = time.time() if now is None else now
    buffer.add(f"{PREFIX}tp:{_slot(now, THROUGHPUT_SLOT_SECONDS)}", _f("in", queue))


def _task_writes(
    *,
    task_id: str | None,
    task: str,
    queue: str,
    wait_ms: float | None,
    run_ms: float | None,
    state: str,
    retries: int = 0,
    now: float,
) -> _Writes:
    """What one finished task run adds: counters, the queue's last-consumed time, its timing."""
    tp_key = f"{PREFIX}tp:{_slot(now, THROUGHPUT_SLOT_SECONDS)}"
    h_key = f"{PREFIX}h:{_slot(now, HISTOGRAM_SLOT_SECONDS)}"
    base = _f(queue, task)
    counters = [(tp_key, _f("out", queue)), (h_key, _f(base, "c"))]
    if state == "FAILURE":
        counters.append((h_key, _f(base, "f")))
    if state == "RETRY":
        counters.append((h_key, _f(base, "r")))
    if wait_ms is not None:
        counters.append((h_key, _f(base, f"w{bucket_index(max(wait_ms, 0.0))}")))
    if run_ms is not None:
        counters.append((h_key, _f(base, f"x{bucket_index(max(run_ms, 0.0))}")))
    writes = _Writes(
        counts=dict.fromkeys(counters, 1), fields={(f"{PREFIX}last_out", queue): repr(now)}
    )
    if task_id is not None:  # a run without a task id (a handoff follow-up) has nothing to look up
        timing = {
            "task": task,
            "queue": queue,
            "wait_ms": None if wait_ms is None else round(max(wait_ms, 0.0), 2),
            "run_ms": None if run_ms is None else round(run_ms, 2),
            "retries": retries,
            "state": state,
            "finished_at": now,
        }
        writes.strings[f"{PREFIX}tid:{task_id}"] = (json.dumps(timing), timing_ttl_seconds())
    return writes


def buffer_task(**run: Any) -> None:
    """One finished task run (the arguments of ``_task_writes`` but ``now``), buffered: no
    Redis call here (see CounterBuffer)."""
    buffer.merge(_task_writes(now=time.time(), **run))


def record_task(*, now: float | None = None, conn: Any = None, **run: Any) -> None:
    """One finished task run, as ``buffer_task`` takes it, written now in one round trip."""
    writes = _task_writes(now=time.time() if now is None else now, **run)
    pipe = (conn or _redis()).pipeline(transaction=False)
    writes.queue_on(pipe)
    pipe.execute()


def record_operation(
    name: str,
    *,
    duration_ms: float,
    queries: int,
    slow: bool,
    now: float | None = None,
) -> None:
    """One run of an instrumented operation, buffered (flushed within a second)."""
    now = time.time() if now is None else now
    h_key = f"{PREFIX}h:{_slot(now, HISTOGRAM_SLOT_SECONDS)}"
    base = _f("op", name)
    buffer.add(h_key, _f(base, "c"))
    if slow:
        buffer.add(h_key, _f(base, "s"))
    buffer.add(h_key, _f(base, f"d{bucket_index(duration_ms)}"))
    buffer.add(h_key, _f(base, f"q{bucket_index(float(queries))}"))


# --- readers -------------------------------------------------------------------------------


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _histogram_slots(window_seconds: int, now: float) -> list[str]:
    last = _slot(now, HISTOGRAM_SLOT_SECONDS)
    count = max(1, math.ceil(window_seconds / HISTOGRAM_SLOT_SECONDS))
    return [f"{PREFIX}h:{slot}" for slot in range(last - count + 1, last + 1)]


# Merging the window's per-minute hashes inside Redis returns one small hash instead of every
# minute's fields: with 30 task names x 80 buckets x 15 minutes that is ~36,000 fields less to
# parse in Python per page (a few ms of Lua in Redis, once per page refresh).
_MERGE_LUA = """
local acc, order = {}, {}
for _, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  for j = 1, #flat, 2 do
    local f, v = flat[j], tonumber(flat[j + 1])
    if acc[f] == nil then acc[f] = v; order[#order + 1] = f else acc[f] = acc[f] + v end
  end
end
local out = {}
for _, f in ipairs(order) do out[#out + 1] = f; out[#out + 1] = acc[f] end
return out
"""


def _merged_histogram_fields(window_seconds: int, now: float | None, conn: Any) -> dict[str, int]:
    now = time.time() if now is None else now
    keys = _histogram_slots(window_seconds, now)
    return _pairs((conn or _redis()).eval(_MERGE_LUA, len(keys), *keys))


def _pairs(flat: list[Any]) -> dict[str, int]:
    return {_decode(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _summarise(counts: dict[int, int], prefix: str, into: dict[str, Any]) -> None:
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        into[f"{prefix}_{label}"] = percentile_from_histogram(counts, q)


def window_stats(
    window_seconds: int = 900, *, now: float | None = None, conn: Any = None
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(task_stats, operation_stats) from ONE read of the window's histograms."""
    fields = _merged_histogram_fields(window_seconds, now, conn)
    return _task_stats_from(fields, None), _operation_stats_from(fields)


def task_stats(
    window_seconds: int = 900,
    queue: str | None = None,
    *,
    now: float | None = None,
    conn: Any = None,
) -> dict[str, dict[str, Any]]:
    """Per task name over the last window (whole minutes, the current one included)."""
    return _task_stats_from(_merged_histogram_fields(window_seconds, now, conn), queue)


def _task_stats_from(fields: dict[str, int], queue: str | None) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        parts = field.split(_FIELD_SEP)
        if len(parts) != 3 or parts[0] == "op":
            continue
        task_queue, task, kind = parts
        if queue is not None and task_queue != queue:
            continue
        entry = raw.setdefault(
            task, {"count": 0, "failures": 0, "retries": 0, "queues": {}, "w": {}, "x": {}}
        )
        if kind == "c":
            entry["count"] += value
            entry["queues"][task_queue] = entry["queues"].get(task_queue, 0) + value
        elif kind == "f":
            entry["failures"] += value
        elif kind == "r":
            entry["retries"] += value
        elif kind[0] in "wx" and kind[1:].isdigit():
            hist = entry[kind[0]]
            hist[int(kind[1:])] = hist.get(int(kind[1:]), 0) + value
    result: dict[str, dict[str, Any]] = {}
    for task, entry in sorted(raw.items()):
        stats: dict[str, Any] = {
            "count": entry["count"],
            "failures": entry["failures"],
            "retries": entry["retries"],
            "queues": entry["queues"],
        }
        _summarise(entry["w"], "wait", stats)
        _summarise(entry["x"], "run", stats)
        result[task] = stats
    return result


def operation_stats(
    window_seconds: int = 900, *, now: float | None = None, conn: Any = None
) -> dict[str, dict[str, Any]]:
    """Per instrumented operation: count, slow count, duration and query-count percentiles."""
    return _operation_stats_from(_merged_histogram_fields(window_seconds, now, conn))


def _operation_stats_from(fields: dict[str, int]) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        parts = field.split(_FIELD_SEP)
        if len(parts) != 3 or parts[0] != "op":
            continue
        _, name, kind = parts
        entry = raw.setdefault(name, {"count": 0, "slow": 0, "d": {}, "q": {}})
        if kind == "c":
            entry["count"] += value
        elif kind == "s":
            entry["slow"] += value
        elif kind[0] in "dq" and kind[1:].isdigit():
            hist = entry[kind[0]]
            hist[int(kind[1:])] = hist.get(int(kind[1:]), 0) + value
    result: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(raw.items()):
        stats: dict[str, Any] = {"count": entry["count"], "slow": entry["slow"]}
        _summarise(entry["d"], "duration", stats)
        stats["queries_p95"] = percentile_from_histogram(entry["q"], 0.95)
        result[name] = stats
    return result


def _throughput_slots(window_seconds: int, now: float) -> tuple[list[int], float]:
    """The slots covering the last window (the current, partial one included) and the
    seconds they really cover, so rates divide by time measured, not time assumed."""
    last = _slot(now, THROUGHPUT_SLOT_SECONDS)
    elapsed = now - last * THROUGHPUT_SLOT_SECONDS
    previous = max(0, math.ceil((window_seconds - elapsed) / THROUGHPUT_SLOT_SECONDS))
    covered = max(elapsed + previous * THROUGHPUT_SLOT_SECONDS, 1.0)
    return list(range(last - previous, last + 1)), covered


def throughput_all(
    windows: Iterable[int] = (60, 300, 900), *, now: float | None = None, conn: Any = None
) -> dict[str, dict[int, dict[str, float]]]:
    """{queue: {window: {"in", "out", "in_per_s", "out_per_s"}}} for every queue seen."""
    now = time.time() if now is None else now
    windows = list(windows)
    pipe = (conn or _redis()).pipeline(transaction=False)
    covered_by_window = {}
    for window in windows:
        slots, covered_by_window[window] = _throughput_slots(window, now)
        keys = [f"{PREFIX}tp:{slot}" for slot in slots]
        pipe.eval(_MERGE_LUA, len(keys), *keys)
    result: dict[str, dict[int, dict[str, float]]] = {}
    for window, flat in zip(windows, pipe.execute(), strict=True):
        covered = covered_by_window[window]
        sums: dict[str, dict[str, int]] = {}
        for field, value in _pairs(flat).items():
            direction, _, queue = field.partition(_FIELD_SEP)
            bucket = sums.setdefault(queue, {"in": 0, "out": 0})
            if direction in bucket:
                bucket[direction] += value
        for queue, counts in sums.items():
            result.setdefault(queue, {})[window] = {
                "in": counts["in"],
                "out": counts["out"],
                "in_per_s": round(counts["in"] / covered, 3),
                "out_per_s": round(counts["out"] / covered, 3),
            }
    return result


def queue_throughput(
    queue: str, window_seconds: int = 300, *, now: float | None = None, conn: Any = None
) -> dict[str, float]:
    figures = throughput_all((window_seconds,), now=now, conn=conn).get(queue, {})
    return figures.get(window_seconds, {"in": 0, "out": 0, "in_per_s": 0.0, "out_per_s": 0.0})


def queue_series(
    queue: str | None = None, minutes: int = 15, *, now: float | None = None, conn: Any = None
) -> dict[str, list[dict[str, int]]]:
    """Per queue, per minute in/out counts for the last `minutes` (oldest first)."""
    now = time.time() if now is None else now
    per_minute_slots = 60 // THROUGHPUT_SLOT_SECONDS
    first_minute = int(now // 60 * 60) - (minutes - 1) * 60
    minute_starts = list(range(first_minute, first_minute + minutes * 60, 60))
    pipe = (conn or _redis()).pipeline(transaction=False)
    for minute in minute_starts:
        first_slot = minute // THROUGHPUT_SLOT_SECONDS
        keys = [f"{PREFIX}tp:{slot}" for slot in range(first_slot, first_slot + per_minute_slots)]
        pipe.eval(_MERGE_LUA, len(keys), *keys)
    per_minute: dict[str, dict[int, dict[str, int]]] = {}
    for minute, flat in zip(minute_starts, pipe.execute(), strict=True):
        for field, value in _pairs(flat).items():
            direction, _, name = field.partition(_FIELD_SEP)
            if queue is not None and name != queue:
                continue
            counts = per_minute.setdefault(name, {}).setdefault(minute, {"in": 0, "out": 0})
            if direction in counts:
                counts[direction] += value
    return {
        name: [{"minute": m, **by_minute.get(m, {"in": 0, "out": 0})} for m in minute_starts]
        for name, by_minute in per_minute.items()
    }


def last_consumed_all(*, conn: Any = None) -> dict[str, float]:
    return {
        _decode(q): float(_decode(t))
        for q, t in (conn or _redis()).hgetall(f"{PREFIX}last_out").items()
    }


def last_consumed(queue: str, *, conn: Any = None) -> float | None:
    value = (conn or _redis()).hget(f"{PREFIX}last_out", queue)
    return None if value is None else float(_decode(value))


def task_timings(task_ids: Iterable[str], *, conn: Any = None) -> dict[str, dict[str, Any]]:
    ids = [str(task_id) for task_id in task_ids]
    if not ids:
        return {}
    values = (conn or _redis()).mget([f"{PREFIX}tid:{task_id}" for task_id in ids])
    return {task_id: json.loads(value) for task_id, value in zip(ids, values, strict=True) if value}


def task_timing(task_id: str, *, conn: Any = None) -> dict[str, Any] | None:
    return task_timings([task_id], conn=conn).get(str(task_id))
