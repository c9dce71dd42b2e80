"""Flow definitions for the hot path: no database query per message.

Two levels, both keyed by one global version number:
- a per-process dict {version: definitions} (no I/O at all when the version is unchanged);
- Redis (django cache) `flows:definitions:<version>`, shared by every worker.

The version lives in the FlowCacheVersion row (the truth, bumped in the same transaction as the
edit) and in Redis (what readers check: one GET per message). After the edit commits, the
committed version is written to Redis with "set if greater", so two admins saving at once can
never move it backwards. A reader that sees version v builds or reads definitions after v's
transaction committed, so definitions stored under v are never older than v.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from flows import selectors
from flows.engine import compile_definitions
from flows.models import FlowCacheVersion

logger = logging.getLogger(__name__)

VERSION_KEY = "flows:definitions:version"
DEFINITIONS_KEY = "flows:definitions:{version}"
DEFINITIONS_TTL = 24 * 3600

_SET_IF_GREATER = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if new > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return new
end
return current
"""

_lock = threading.Lock()
_local: dict[str, Any] = {"version": None, "definitions": None}


def _version_key() -> str:
    return cache.make_and_validate_key(VERSION_KEY)


def db_version() -> int:
    return FlowCacheVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0


def publish_version(version: int) -> int:
    """Write `version` to Redis unless a newer one is there; return the one in force."""
    result = get_redis_connection("default").eval(_SET_IF_GREATER, 1, _version_key(), version)
    return int(result)


def current_version() -> int:
    """The version readers use: Redis, else the database (then seeded into Redis)."""
    try:
        raw = get_redis_connection("default").get(_version_key())
    except RedisError:
        logger.warning("redis unavailable: flow definitions version read from the database")
        return db_version()
    if raw is not None:
        return int(raw)
    version = db_version()
    try:
        return publish_version(version)
    except RedisError:
        return version


def build_definitions() -> dict[str, Any]:
    definitions = compile_definitions(selectors.flow_data_list(include_ids=True))
    return definitions


def get_definitions() -> dict[str, Any]:
    """The compiled definitions of the current version (cached; see the module docstring)."""
    version = current_version()
    with _lock:
        if _local["version"] == version and _local["definitions"] is not None:
            return _local["definitions"]
    key = DEFINITIONS_KEY.format(version=version)
    definitions = None
    try:
        definitions = cache.get(key)
    except RedisError:
        logger.warning("redis unavailable: flow definitions %s loaded from the database", version)
    if definitions is None:
        definitions = build_definitions()
        definitions["version"] = version
        try:
            cache.set(key, definitions, DEFINITIONS_TTL)
        except RedisError:
            logger.warning("redis unavailable: flow definitions %s not shared", version)
    with _lock:
        _local["version"] = version
        _local["definitions"] = definitions
    return definitions


def clear_local() -> None:
    """Forget the per-process copy (tests; Redis and the version are untouched)."""
    with _lock:
        _local["version"] = None
        _local["definitions"] = None


def bump_version() -> None:
    """Call inside the transaction that changes a definition (signals do it for every save)."""
    updated = FlowCacheVersion.objects.filter(pk=1).update(version=F("version") + 1)
    if not updated:
        FlowCacheVersion.objects.bulk_create(
            [FlowCacheVersion(pk=1, version=1)], ignore_conflicts=True
        )
    # One publish per transaction is enough (an import saves dozens of rows). The database
    # row is still incremented every time: a bump inside a savepoint that rolls back must not
    # be the only one.
    connection = transaction.get_connection()
    if not any(entry[1] is _publish_committed for entry in connection.run_on_commit):
        transaction.on_commit(_publish_committed)


def _publish_committed() -> None:
    version = db_version()
    try:
        publish_version(version)
    except RedisError:
        # Readers keep the old version until Redis is back and the next edit publishes; the
        # database still holds the truth. Say so loudly: operators expect edits to apply.
        logger.error("flow definitions version %s not published: redis unavailable", version)
    else:
        logger.info("flow definitions version %s published", version)
