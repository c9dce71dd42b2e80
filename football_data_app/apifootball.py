"""The API-Football v3 client: the only module of the project that speaks HTTP to it.

Every call goes through, in order: a pause shared by all workers (set in Redis when the API
said the minute or the day is used up), our own pace shared by all workers (GCRA in Redis,
meta_integration.ratelimit), and one pooled requests.Session per process with a timeout.
The envelope is checked on every answer: API-Football reports most failures with HTTP 200 and
an `errors` object (`[]` on success). Failures raise:

- `RetryableApiError` (rateLimit, HTTP 429/5xx, network): the task retries after `retry_after`;
- `PermanentApiError` (requests = daily quota, token, plan, bad parameters): never retried;
- `MalformedResponse`: the body is not the envelope (a proxy page, truncated JSON).

Errors and the quota the API reports are written to ApiCallLog for the admin. Parsing of the
payloads into plain dataclasses lives in football_data_app/parsing.py (no I/O).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from requests.adapters import HTTPAdapter

from meta_integration import ratelimit

logger = logging.getLogger(__name__)

IDS_PER_CALL = 20  # /fixtures?ids= takes at most 20 ids joined by "-"
MAX_PAGES = 200  # a runaway `paging.total` must not loop for ever
PACE_KEY = "wcrm:ratelimit:apifootball:pace"
PAUSE_KEY = "wcrm:ratelimit:apifootball:paused_until"
DAILY_KEY = "wcrm:ratelimit:apifootball:daily_exhausted"
ERROR_RETENTION_DAYS = 7


class ApiFootballError(Exception):
    retryable = False

    def __init__(self, kind: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(f"API-Football {kind}: {message}")
        self.kind = kind
        self.message = message
        self.http_status = http_status


class RetryableApiError(ApiFootballError):
    """Try again after `retry_after` seconds (a rate limit, a 5xx, the network)."""

    retryable = True

    def __init__(
        self, kind: str, message: str, *, retry_after: float, http_status: int | None = None
    ) -> None:
        super().__init__(kind, message, http_status=http_status)
        self.retry_after = retry_after


class PermanentApiError(ApiFootballError):
    """Retrying cannot help until the next UTC day or a configuration fix."""


class MalformedResponse(ApiFootballError):
    """The body is not API-Football's envelope; retried a few times like a 5xx."""

    retryable = True
    retry_after = 30.0

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__("malformed", message, http_status=http_status)


@dataclass(frozen=True)
class Quota:
    """Both header families: the plan's day (x-ratelimit-requests-*) and minute (X-RateLimit-*)."""

    day_limit: int | None = None
    day_remaining: int | None = None
    minute_limit: int | None = None
    minute_remaining: int | None = None


@dataclass
class Envelope:
    response: list[Any]
    results: int = 0
    page: int = 1
    total_pages: int = 1
    quota: Quota = field(default_factory=Quota)


# --- pure parts (no I/O) ------------------------------------------------------------------------
def _int_header(headers: Any, name: str) -> int | None:
    raw = headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def read_quota(headers: Any) -> Quota:
    """`headers` is case-insensitive (requests'); the two families differ only by case."""
    return Quota(
        day_limit=_int_header(headers, "x-ratelimit-requests-limit"),
        day_remaining=_int_header(headers, "x-ratelimit-requests-remaining"),
        minute_limit=_int_header(headers, "X-RateLimit-Limit"),
        minute_remaining=_int_header(headers, "X-RateLimit-Remaining"),
    )


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    """`errors` as {kind: message}: [] or {} is success; an object or a non-empty list fails."""
    raw = body.get("errors", [])
    if raw in ([], {}, None, ""):
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        found: dict[str, str] = {}
        for item in raw:
            if isinstance(item, dict):
                found.update({str(k): str(v) for k, v in item.items()})
            else:
                found.setdefault("unknown", str(item))
        return found
    return {"unknown": str(raw)}


def error_for(
    errors: dict[str, str], *, http_status: int | None, retry_seconds: float
) -> ApiFootballError:
    """The exception an `errors` object means (the first known kind wins)."""
    if "rateLimit" in errors:
        return RetryableApiError(
            "rateLimit", errors["rateLimit"], retry_after=retry_seconds, http_status=http_status
        )
    for kind in ("requests", "token", "plan"):
        if kind in errors:
            return PermanentApiError(kind, errors[kind], http_status=http_status)
    # Anything else names a parameter ("fixture": "The Fixture field must contain an integer"):
    # our request is wrong, and sending it again will not fix it.
    kind, message = next(iter(errors.items()))
    return PermanentApiError(kind, message, http_status=http_status)


def parse_envelope(
    status: int, text: str, headers: Any, *, retry_seconds: float = 60.0
) -> Envelope:
    """Check an answer; return the envelope or raise the error it carries."""
    if status == 429:
        retry_after = _int_header(headers, "Retry-After") or retry_seconds
        raise RetryableApiError(
            "rateLimit", "HTTP 429 Too Many Requests", retry_after=retry_after, http_status=429
        )
    if status >= 500:
        raise RetryableApiError(
            "http", f"HTTP {status}", retry_after=min(retry_seconds, 30.0), http_status=status
        )
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise MalformedResponse(
            f"not JSON (HTTP {status}): {text[:120]!r}", http_status=status
        ) from exc
    if not isinstance(body, dict):
        raise MalformedResponse(f"not a JSON object (HTTP {status})", http_status=status)
    errors = errors_of(body)
    if errors:
        raise error_for(errors, http_status=status, retry_seconds=retry_seconds)
    if status in (401, 403):
        raise PermanentApiError("token", f"HTTP {status}", http_status=status)
    if status >= 400:
        raise PermanentApiError("http", f"HTTP {status}", http_status=status)
    response = body.get("response")
    if not isinstance(response, list):
        raise MalformedResponse("`response` is missing or not a list", http_status=status)
    paging = body.get("paging") or {}
    try:
        page = int(paging.get("current", 1))
        total = int(paging.get("total", 1))
    except (TypeError, ValueError, AttributeError) as exc:
        raise MalformedResponse(f"bad `paging`: {paging!r}", http_status=status) from exc
    return Envelope(
        response=response,
        results=int(body.get("results") or len(response)),
        page=page,
        total_pages=max(total, 1),
        quota=read_quota(headers),
    )


def chunked(ids: Iterable[int], size: int = IDS_PER_CALL) -> Iterator[list[int]]:
    chunk: list[int] = []
    for item in ids:
        chunk.append(int(item))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seconds_to_next_utc_day(now: datetime) -> int:
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return max(60, int((tomorrow - now).total_seconds()))


# --- shared limiter (Redis) ---------------------------------------------------------------------
def _redis():
    return get_redis_connection("default")


def pause_all(seconds: float, *, key: str = PAUSE_KEY) -> None:
    """Stop every worker's calls for `seconds` (the API said the minute or day is used up)."""
    until = time.time() + seconds
    try:
        conn = _redis()
        current = conn.get(key)
        if current is None or float(current) < until:
            conn.set(key, f"{until:.3f}", px=int(seconds * 1000) + 1000)
    except RedisError:
        logger.warning("could not record the API-Football pause in Redis")


def paused_for(key: str = PAUSE_KEY) -> float:
    try:
        raw = _redis().get(key)
    except RedisError:
        return 0.0
    return max(0.0, float(raw) - time.time()) if raw is not None else 0.0


def honour_quota(quota: Quota, *, retry_seconds: float) -> None:
    """The headers of every answer: a used-up minute or day pauses all workers."""
    if quota.day_remaining is not None and quota.day_remaining <= 0:
        pause_all(seconds_to_next_utc_day(timezone.now()), key=DAILY_KEY)
    if quota.minute_remaining is not None and quota.minute_remaining <= 0:
        pause_all(retry_seconds)


def wait_for_slot() -> None:
    """Raise instead of calling when the API is paused or our shared pace is exceeded."""
    daily = paused_for(DAILY_KEY)
    if daily:
        raise PermanentApiError(
            "requests", f"daily quota used up; calls resume in {int(daily)} s (next UTC day)"
        )
    pause = paused_for(PAUSE_KEY)
    if pause:
        raise RetryableApiError("rateLimit", "paused after a rate limit", retry_after=pause)
    try:
        granted, wait = ratelimit.acquire(
            PACE_KEY,
            rate=float(settings.APIFOOTBALL_REQUESTS_PER_MINUTE) / 60.0,
            max_wait=float(settings.APIFOOTBALL_RATE_LIMIT_MAX_WAIT_SECONDS),
        )
    except RedisError as exc:
        raise RetryableApiError("limiter", "Redis unavailable", retry_after=5.0) from exc
    if not granted:
        raise RetryableApiError("pace", "our per-minute pace is used up", retry_after=wait)


# --- recording ----------------------------------------------------------------------------------
def record_call(
    endpoint: str,
    params: dict[str, Any],
    *,
    http_status: int | None,
    quota: Quota | None,
    error: ApiFootballError | None,
) -> None:
    """Errors get a row each; a success refreshes one row per endpoint (the last quota)."""
    from football_data_app.models import ApiCallLog

    values = {
        "params": params,
        "http_status": http_status,
        "requests_remaining": quota.day_remaining if quota else None,
        "minute_remaining": quota.minute_remaining if quota else None,
    }
    try:
        if error is not None:
            ApiCallLog.objects.create(
                endpoint=endpoint,
                error_kind=error.kind,
                error_message=error.message[:2000],
                **values,
            )
            # Errors are kept for a while, not for ever (a long outage must not fill the table).
            ApiCallLog.objects.exclude(error_kind="").filter(
                created_at__lt=timezone.now() - timedelta(days=ERROR_RETENTION_DAYS)
            ).delete()
        elif not ApiCallLog.objects.filter(endpoint=endpoint, error_kind="").update(
            created_at=timezone.now(), **values
        ):
            ApiCallLog.objects.create(endpoint=endpoint, **values)
    except DatabaseError:
        logger.exception("could not record the API-Football call to %s", endpoint)


# --- HTTP ---------------------------------------------------------------------------------------
_process_lock = threading.Lock()
_process: dict[str, Any] = {"pid": None, "session": None}


def http_session() -> requests.Session:
    """One pooled session per process (a forked Celery child builds its own)."""
    with _process_lock:
        if _process["pid"] != os.getpid() or _process["session"] is None:
            # max_retries=0: retries are Celery's decision, paced by the shared limiter.
            adapter = HTTPAdapter(
                pool_connections=1,
                pool_maxsize=int(settings.APIFOOTBALL_HTTP_POOL_SIZE),
                max_retries=0,
            )
            session = requests.Session()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _process.update(pid=os.getpid(), session=session)
        return _process["session"]


class ApiFootballClient:
    def __init__(self, *, base_url: str | None = None, key: str | None = None) -> None:
        self.base_url = (base_url or settings.APIFOOTBALL_BASE_URL).rstrip("/")
        self.key = settings.APIFOOTBALL_KEY if key is None else key
        self.retry_seconds = float(settings.APIFOOTBALL_RATE_LIMIT_RETRY_SECONDS)

    def get(self, endpoint: str, params: dict[str, Any] | None = None) -> Envelope:
        """One page of one endpoint (e.g. "/fixtures"), checked; raises ApiFootballError."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        wait_for_slot()
        timeout = float(settings.APIFOOTBALL_HTTP_TIMEOUT)
        try:
            # Only the key header: API-Football may reject extra ones such as Content-Type.
            response = http_session().get(
                f"{self.base_url}{endpoint}",
                params=params,
                headers={"x-apisports-key": self.key},
                timeout=(min(5.0, timeout), timeout),
            )
        except requests.RequestException as exc:
            error = RetryableApiError("network", str(exc)[:500], retry_after=15.0)
            record_call(endpoint, params, http_status=None, quota=None, error=error)
            raise error from exc
        quota = read_quota(response.headers)
        honour_quota(quota, retry_seconds=self.retry_seconds)
        try:
            envelope = parse_envelope(
                response.status_code,
                response.text,
                response.headers,
                retry_seconds=self.retry_seconds,
            )
        except ApiFootballError as error:
            self._after_error(error)
            logger.warning("API-Football %s %s failed: %s", endpoint, params, error)
            record_call(
                endpoint, params, http_status=response.status_code, quota=quota, error=error
            )
            raise
        record_call(endpoint, params, http_status=response.status_code, quota=quota, error=None)
        return envelope

    def _after_error(self, error: ApiFootballError) -> None:
        if isinstance(error, RetryableApiError) and error.kind == "rateLimit":
            pause_all(error.retry_after)
        elif error.kind == "requests":
            pause_all(seconds_to_next_utc_day(timezone.now()), key=DAILY_KEY)

    def get_all(self, endpoint: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every page's `response`, following `paging.total`."""
        params = dict(params or {})
        first = self.get(endpoint, params)
        items = list(first.response)
        for page in range(2, min(first.total_pages, MAX_PAGES) + 1):
            items.extend(self.get(endpoint, {**params, "page": page}).response)
        return items

    # --- endpoints ------------------------------------------------------------------------------
    def leagues(self, **params: Any) -> list[dict[str, Any]]:
        return self.get_all("/leagues", params)

    def fixtures(self, **params: Any) -> list[dict[str, Any]]:
        return self.get_all("/fixtures", params)

    def fixtures_by_ids(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for chunk in chunked(ids):
            items.extend(self.get_all("/fixtures", {"ids": "-".join(map(str, chunk))}))
        return items

    def odds(self, **params: Any) -> list[dict[str, Any]]:
        return self.get_all("/odds", params)

    def bets(self) -> list[dict[str, Any]]:
        return self.get_all("/odds/bets")

    def bookmakers(self) -> list[dict[str, Any]]:
        return self.get_all("/odds/bookmakers")
