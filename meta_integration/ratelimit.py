"""A rate limit shared by every worker on every machine: one Redis key per phone number.

GCRA (a token bucket without a refill process): the key holds the theoretical arrival time of
the next slot. Each caller reserves the next slot atomically and sleeps until it; a caller
whose slot is further away than it may wait reserves nothing and is told how long to wait.
Slots are spaced 1/rate apart, so no one-second window holds more than `rate` sends, and
there is no burst at window edges as with a fixed per-second counter. Redis's clock is used,
so workers on machines with skewed clocks still agree.
"""

from __future__ import annotations

import time

from django_redis import get_redis_connection

_SCRIPT = """
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local wait = tat - now
if wait > max_wait then
  return {0, string.format('%.6f', wait)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', next_tat),
           'PX', math.ceil((next_tat - now) * 1000) + 1000)
return {1, string.format('%.6f', wait)}
"""

_scripts: dict[int, object] = {}


def _script():
    conn = get_redis_connection("default")
    script = _scripts.get(id(conn))
    if script is None:
        script = _scripts[id(conn)] = conn.register_script(_SCRIPT)
    return script


def reserve(key: str, *, rate: float, max_wait: float) -> tuple[bool, float]:
    """Reserve the next slot of `key`: (granted, seconds until it). Does not sleep."""
    granted, wait = _script()(keys=[key], args=[1.0 / rate, max_wait])
    return bool(granted), float(wait)


def acquire(key: str, *, rate: float, max_wait: float) -> tuple[bool, float]:
    """Block until a slot of `key`, at most `max_wait` s: (True, seconds slept).

    (False, wait) when the next slot is further away than `max_wait`: retry after `wait`.
    """
    granted, wait = reserve(key, rate=rate, max_wait=max_wait)
    if granted and wait > 0:
        time.sleep(wait)
    return granted, wait


def phone_number_key(phone_number_id: str, kind: str = "messages") -> str:
    return f"wcrm:ratelimit:meta:{phone_number_id}:{kind}"


# --- bulk work yields to the chat ----------------------------------------------------------------

CHAT_ACTIVE_KEY = "wcrm:chat-active"
CHAT_ACTIVE_MS = 2000


def chat_activity_mark() -> None:
    """A customer's message arrived: bulk sends slow down for the next CHAT_ACTIVE_MS."""
    get_redis_connection("default").set(CHAT_ACTIVE_KEY, 1, px=CHAT_ACTIVE_MS)


def chat_active() -> bool:
    return bool(get_redis_connection("default").exists(CHAT_ACTIVE_KEY))
