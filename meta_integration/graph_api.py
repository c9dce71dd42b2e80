"""The Graph API client: the only module of the project that speaks HTTP to Meta.

Every call goes through, in order: the per-number rate limit shared by all workers (Redis),
the circuit breaker shared by all workers (pybreaker state in Redis), and one pooled
requests.Session per process with a timeout on every call. No urllib3 retries: a retry is a
Celery decision (self.retry with backoff), made from `errors.GraphOutcome`. Nothing here
raises for a Graph or network failure; every call returns a `GraphResult`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pybreaker
import requests
from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from meta_integration import conf, ratelimit
from meta_integration.errors import (
    GraphOutcome,
    breaker_open,
    classify_response,
    classify_transport,
    rate_limited,
    wamid_from,
)

if TYPE_CHECKING:
    from meta_integration.models import WhatsAppNumber

logger = logging.getLogger(__name__)

BREAKER_NAMESPACE = "wcrm:meta_graph"


@dataclass(frozen=True)
class GraphResult:
    outcome: GraphOutcome
    wamid: str | None = None
    body: Any = None


class _BreakerFailure(Exception):
    """Raised inside the breaker so pybreaker counts a retryable failure (never a 4xx)."""


_process_lock = threading.Lock()
_process: dict[str, Any] = {"pid": None, "session": None, "breaker": None, "breaker_conf": None}


def http_session() -> requests.Session:
    """One pooled session per process (a forked Celery child builds its own)."""
    with _process_lock:
        if _process["pid"] != os.getpid() or _process["session"] is None:
            size = int(conf.get("META_HTTP_POOL_SIZE"))
            # max_retries=0: urllib3 must not retry behind Celery's back (a retried POST to
            # /messages is a second message).
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=size, max_retries=0)
            session = requests.Session()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _process.update(pid=os.getpid(), session=session, breaker=None, breaker_conf=None)
        return _process["session"]


def graph_breaker() -> pybreaker.CircuitBreaker:
    """The process's breaker; its state (open/closed, counters) lives in Redis."""
    http_session()  # resets the per-process objects after a fork
    wanted = (int(conf.get("META_BREAKER_FAIL_MAX")), float(conf.get("META_BREAKER_RESET_SECONDS")))
    with _process_lock:
        if _process["breaker"] is None or _process["breaker_conf"] != wanted:
            try:
                # django-redis's raw client answers bytes, as CircuitRedisStorage expects.
                storage: pybreaker.CircuitBreakerStorage = pybreaker.CircuitRedisStorage(
                    pybreaker.STATE_CLOSED,
                    get_redis_connection("default"),
                    namespace=BREAKER_NAMESPACE,
                )
            except RedisError:
                logger.warning("Redis unavailable: circuit breaker state kept in memory")
                storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
            _process["breaker"] = pybreaker.CircuitBreaker(
                fail_max=wanted[0],
                reset_timeout=wanted[1],
                state_storage=storage,
                exclude=[lambda exc: not isinstance(exc, _BreakerFailure)],
                name="graph_api",
            )
            _process["breaker_conf"] = wanted
        return _process["breaker"]


def _breaker_retry_after(breaker: pybreaker.CircuitBreaker) -> float:
    # pybreaker has no public getter for when the circuit opened.
    opened_at = breaker._state_storage.opened_at
    if opened_at is None:
        return breaker.reset_timeout
    elapsed = time.time() - opened_at.timestamp()
    return max(1.0, breaker.reset_timeout - elapsed + 1.0)


def messages_url(number: WhatsAppNumber) -> str:
    version = number.api_version or settings.META_API_VERSION
    base = settings.META_GRAPH_BASE_URL.rstrip("/")
    return f"{base}/{version}/{number.phone_number_id}/messages"


def _encode(payload: dict[str, Any]) -> bytes:
    # Compact UTF-8 with raw characters, as Meta's own clients send (limits count characters).
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _transport_kind(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read_timeout"
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError | ConnectTimeoutError):
        return "connect_error"
    # The connection broke after the request may have been sent: Meta may have it.
    return "connection_lost"


def _request(number: WhatsAppNumber, payload: dict[str, Any]) -> GraphResult:
    token = number.access_token_override or settings.META_ACCESS_TOKEN
    timeout = float(settings.META_HTTP_TIMEOUT)
    try:
        response = http_session().post(
            messages_url(number),
            data=_encode(payload),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=(min(5.0, timeout), timeout),
        )
    except requests.RequestException as exc:
        return GraphResult(classify_transport(_transport_kind(exc), str(exc)))
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:1000]
    outcome = classify_response(response.status_code, body)
    return GraphResult(outcome, wamid_from(body) if outcome.ok else None, body)


def _call(number: WhatsAppNumber, payload: dict[str, Any], limit_key: str) -> GraphResult:
    return _guarded(
        lambda: _request(number, payload), limit_key, float(settings.META_MESSAGES_PER_SECOND)
    )


def _guarded(perform: Callable[[], GraphResult], limit_key: str, rate: float) -> GraphResult:
    """One Graph request behind the shared rate limit and circuit breaker."""
    try:
        granted, wait = ratelimit.acquire(
            limit_key,
            rate=rate,
            max_wait=float(conf.get("META_RATE_LIMIT_MAX_WAIT_SECONDS")),
        )
    except RedisError:
        # No shared limiter without Redis (and no broker either): try again shortly.
        logger.warning("rate limiter unavailable (Redis); send deferred")
        return GraphResult(rate_limited(1.0))
    if not granted:
        return GraphResult(rate_limited(wait))
    breaker = graph_breaker()
    results: list[GraphResult] = []
    try:
        with breaker.calling():
            results.append(perform())
            if results[0].outcome.counts_for_breaker:
                raise _BreakerFailure
    except _BreakerFailure:
        pass
    except pybreaker.CircuitBreakerError:
        if not results:  # open: no request was made
            return GraphResult(breaker_open(_breaker_retry_after(breaker)))
        logger.warning("Graph API circuit breaker opened after %s", results[0].outcome.details)
    return results[0]


def send_message(
    number: WhatsAppNumber,
    to: str,
    message: dict[str, Any],
    biz_opaque_callback_data: str = "",
    bulk: bool = False,
) -> GraphResult:
    """POST one message object (a meta_integration.messages builder's output).

    A bulk send first takes a slot of the number's bulk budget (META_BULK_MESSAGES_PER_SECOND):
    every send brings three status webhooks back, so an unpaced bulk run would spend the
    machine (and the number's throughput) that replies need.
    """
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        **message,
    }
    if biz_opaque_callback_data:
        # Meta echoes it in every status webhook of this message: how a send we made but did
        # not record (worker killed after Meta accepted) is recognised and completed.
        payload["biz_opaque_callback_data"] = biz_opaque_callback_data
    if bulk:
        paced = _bulk_pace(number)
        if paced is not None:
            return paced
    return _call(number, payload, ratelimit.phone_number_key(number.phone_number_id))


def _bulk_pace(number: WhatsAppNumber) -> GraphResult | None:
    """Wait for a slot of the bulk budget; a result (retry later) when there is none soon.

    While customers are chatting (a message arrived in the last 2 s) the budget drops to
    META_BULK_MESSAGES_PER_SECOND_DURING_CHAT: bulk work yields the machine to replies and
    takes its full pace back when the chat is quiet.
    """
    try:
        during_chat = ratelimit.chat_active()
        rate = conf.get(
            "META_BULK_MESSAGES_PER_SECOND_DURING_CHAT"
            if during_chat
            else "META_BULK_MESSAGES_PER_SECOND"
        )
        # A bulk send sleeps for its slot (the bulk worker has nothing better to do) rather
        # than failing fast: a refused send's retry is a write and a publish, and thousands
        # of them spinning would cost the machine more than the sends.
        granted, wait = ratelimit.acquire(
            ratelimit.phone_number_key(number.phone_number_id, "bulk"),
            rate=float(rate),
            max_wait=float(conf.get("META_BULK_MAX_WAIT_SECONDS")),
        )
    except RedisError:
        logger.warning("rate limiter unavailable (Redis); bulk send deferred")
        return GraphResult(rate_limited(1.0))
    return None if granted else GraphResult(rate_limited(wait))


def mark_as_read(number: WhatsAppNumber, wamid: str) -> GraphResult:
    """Mark an inbound message (and the ones before it) as read: blue ticks."""
    payload = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    # Receipts are not messages: their own bucket (same rate) so they never take a reply's slot.
    return _call(number, payload, ratelimit.phone_number_key(number.phone_number_id, "receipts"))


# Management calls (the template list) count against the app's hourly API-call limit (code 4),
# not the messaging throughput: a gentle pace of their own.
MANAGEMENT_CALLS_PER_SECOND = 5.0
TEMPLATE_FIELDS = "name,language,category,status,components,id,rejected_reason"


def message_templates_url(waba_id: str, api_version: str = "") -> str:
    version = api_version or settings.META_API_VERSION
    base = settings.META_GRAPH_BASE_URL.rstrip("/")
    return f"{base}/{version}/{waba_id}/message_templates"


def _get(url: str, params: dict[str, Any], token: str) -> GraphResult:
    timeout = float(settings.META_HTTP_TIMEOUT)
    try:
        response = http_session().get(
            url,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=(min(5.0, timeout), timeout),
        )
    except requests.RequestException as exc:
        return GraphResult(classify_transport(_transport_kind(exc), str(exc)))
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:1000]
    return GraphResult(classify_response(response.status_code, body), None, body)


def message_templates_list(
    waba_id: str,
    *,
    after: str = "",
    limit: int = 100,
    number: WhatsAppNumber | None = None,
) -> GraphResult:
    """One page of `GET /{waba-id}/message_templates`; `body` is the page as Meta sent it.

    Page on with `after` = the page's `paging.cursors.after` while `paging.next` is present.
    `number` (one of the WABA's numbers) gives the token and API version when it has its own.
    """
    token = (number.access_token_override if number else "") or settings.META_ACCESS_TOKEN
    url = message_templates_url(waba_id, number.api_version if number else "")
    params: dict[str, Any] = {"fields": TEMPLATE_FIELDS, "limit": int(limit)}
    if after:
        params["after"] = after
    return _guarded(
        lambda: _get(url, params, token),
        ratelimit.phone_number_key(f"waba:{waba_id}", "management"),
        MANAGEMENT_CALLS_PER_SECOND,
    )
