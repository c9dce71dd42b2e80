"""Pure classification of Graph API answers: success, retryable or permanent.

No I/O here. Meta advises keying logic on the numeric `code` (plus `details`), never on titles
(developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes), and a
client must survive any body at all (an HTML error page from a proxy, an empty 502). So every
input maps to an outcome and nothing raises.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

SUCCESS = "success"
RETRYABLE = "retryable"
PERMANENT = "permanent"

# code -> suggested minimum delay (seconds) before the next attempt.
RETRYABLE_CODES: dict[int, float] = {
    130429: 1.0,  # throughput limit of the phone number: back off with jitter
    131056: 6.0,  # pair limit: ~1 message per 6 s to the same user; other users unaffected
    131057: 60.0,  # account in maintenance / throughput upgrade, "takes up to a minute"
    4: 300.0,  # app API-call limit (per hour): a long backoff
    80007: 300.0,  # WABA rate limit: same as 4
    1: 0.0,  # API unknown / service down
    2: 0.0,  # API service temporarily unavailable
    131000: 0.0,  # something went wrong (Meta's own "unknown")
    131016: 0.0,  # service unavailable
}

PERMANENT_CODES: frozenset[int] = frozenset(
    {
        0,  # auth exception
        190,  # access token expired / invalid: alert and refresh, a retry cannot help
        100,  # invalid parameter: our bug
        131008,  # required parameter missing
        131009,  # parameter value invalid
        131026,  # undeliverable (not on WhatsApp, old app, ToS not accepted)
        131047,  # re-engagement: outside the 24-hour window, send a template
        131048,  # spam / quality rate limit: do not retry quickly (RapidPro does; we stop)
        131049,  # per-user marketing limit
        131051,  # unsupported message type
        132000,  # template parameter count mismatch
        132001,  # template does not exist (in this language, or not approved)
        132005,  # translated text too long
        132007,  # template format character policy violated
        132012,  # template parameter format mismatch
        132015,  # template paused (low quality)
        132016,  # template disabled
    }
)

# 131056 is about one recipient: it must not open the breaker that guards every send.
NOT_BREAKER_FAILURES: frozenset[int] = frozenset({131056})

# A read timeout is ambiguous: Meta may have accepted the message. Waiting longer than a
# status webhook normally takes lets the echo (biz_opaque_callback_data) complete the row
# before the retry, so the retry finds nothing to send.
READ_TIMEOUT_MIN_DELAY = 15.0
AMBIGUOUS_TRANSPORT = frozenset({"read_timeout", "connection_lost"})


@dataclass(frozen=True)
class GraphOutcome:
    """What one Graph API call came to, and what to do next."""

    kind: str  # SUCCESS, RETRYABLE or PERMANENT
    code: int | None = None
    details: str = ""
    http_status: int | None = None
    min_delay: float = 0.0
    counts_for_breaker: bool = False
    # False when no request left this process (breaker open, rate limited): not an attempt.
    attempted: bool = True

    @property
    def ok(self) -> bool:
        return self.kind == SUCCESS

    @property
    def retryable(self) -> bool:
        return self.kind == RETRYABLE

    @property
    def permanent(self) -> bool:
        return self.kind == PERMANENT


def _int_or_none(value: Any) -> int | None:
    # bool is an int in Python; a JSON `true` is not an error code.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _error_fields(body: Any) -> tuple[int | None, str]:
    """(code, details) from a Meta error body; (None, "") when it has none."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None, ""
    error = body["error"]
    code = _int_or_none(error.get("code"))
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    text = " | ".join(
        part for part in (message, details if isinstance(details, str) else "") if part
    )
    return code, text[:1000]


def _snippet(body: Any) -> str:
    text = body if isinstance(body, str) else repr(body)
    return text[:200]


def classify_code(code: int | None, http_status: int | None, details: str = "") -> GraphOutcome:
    """The class of a Meta error code (with the HTTP status as tie-breaker)."""
    if code is not None and code in RETRYABLE_CODES:
        return GraphOutcome(
            RETRYABLE,
            code,
            details,
            http_status,
            min_delay=RETRYABLE_CODES[code],
            counts_for_breaker=code not in NOT_BREAKER_FAILURES,
        )
    if http_status is not None and (http_status >= 500 or http_status in (408, 429)):
        # Any 5xx is Meta's side (or a proxy's): retry, and let the breaker count it.
        return GraphOutcome(RETRYABLE, code, details, http_status, counts_for_breaker=True)
    if code is not None and code in PERMANENT_CODES:
        return GraphOutcome(PERMANENT, code, details, http_status)
    # An unknown 4xx code: retrying a request Meta refused will not make it acceptable.
    return GraphOutcome(PERMANENT, code, details or "unknown Graph API error", http_status)


def classify_response(http_status: int, body: Any) -> GraphOutcome:
    """Classify an HTTP answer. `body` is the parsed JSON, or the raw text when it was not JSON."""
    code, details = _error_fields(body)
    if 200 <= http_status < 300:
        if code is not None:
            # Meta never answers 2xx with an error, but some proxies do: believe the error.
            return classify_code(code, http_status, details)
        # A 2xx means "accepted", even if we cannot read the wamid: resending would duplicate.
        return GraphOutcome(SUCCESS, http_status=http_status)
    if code is None and not details:
        details = f"HTTP {http_status}: {_snippet(body)}"
    return classify_code(code, http_status, details)


def classify_transport(kind: str, detail: str = "") -> GraphOutcome:
    """A request that got no HTTP answer.

    `kind`: "connect_error" / "connect_timeout" (it never reached Meta: safe to resend soon) or
    "read_timeout" / "connection_lost" (it may have reached Meta: wait for the echo first).
    """
    delay = READ_TIMEOUT_MIN_DELAY if kind in AMBIGUOUS_TRANSPORT else 0.0
    return GraphOutcome(
        RETRYABLE, None, f"{kind}: {detail}"[:1000], None, min_delay=delay, counts_for_breaker=True
    )


def breaker_open(retry_after: float) -> GraphOutcome:
    """The circuit is open: no request was made; come back after it may have closed."""
    return GraphOutcome(
        RETRYABLE, None, "circuit breaker open", None, min_delay=retry_after, attempted=False
    )


def rate_limited(retry_after: float) -> GraphOutcome:
    """Our own per-number rate limit said wait longer than we are willing to block."""
    return GraphOutcome(
        RETRYABLE, None, "rate limited locally", None, min_delay=retry_after, attempted=False
    )


def wamid_from(body: Any) -> str | None:
    """messages[0].id of a send answer, or None when the body does not have one."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        wamid = messages[0].get("id")
        if isinstance(wamid, str) and wamid and len(wamid) <= 255:
            return wamid
    return None


def retry_delay(
    retries: int,
    *,
    base: float,
    cap: float,
    min_delay: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at `cap`.

    `retries` is how many retries already happened (0 for the first). The result is never
    below the error's own minimum (e.g. 60 s for 131057) nor above `cap`, which callers keep
    below the broker's visibility timeout and Celery's countdown ceiling.
    """
    rng = rng or random
    exponential = min(cap, base * (2 ** max(0, retries)))
    delay = exponential / 2 + rng.uniform(0, exponential / 2)
    return round(min(cap, max(min_delay, delay)), 3)
