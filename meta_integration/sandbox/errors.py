"""Meta's error answers as the sandbox gives them: the code, its HTTP status and title, and
the Graph error body `{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}`."""

from __future__ import annotations

import uuid

# code -> (HTTP status, title). Meta's HTTP status for each refusal it makes.
ERRORS: dict[int, tuple[int, str]] = {
    0: (401, "AuthException"),
    1: (500, "An unknown error occurred"),
    2: (503, "Service temporarily unavailable"),
    4: (400, "(#4) Application request limit reached"),
    100: (400, "(#100) Invalid parameter"),
    190: (401, "Invalid OAuth access token - Cannot parse access token"),
    80007: (400, "(#80007) Rate limit issues"),
    130429: (400, "(#130429) Rate limit hit"),
    131000: (500, "(#131000) Something went wrong"),
    131008: (400, "(#131008) Required parameter is missing"),
    131009: (400, "(#131009) Parameter value is not valid"),
    131016: (503, "(#131016) Service unavailable"),
    131026: (400, "(#131026) Message undeliverable"),
    131047: (400, "(#131047) Re-engagement message"),
    131048: (400, "(#131048) Spam rate limit hit"),
    131049: (400, "(#131049) Meta chose not to deliver this message"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    131057: (400, "(#131057) Account in maintenance mode"),
    132000: (400, "(#132000) Number of parameters does not match the expected number of params"),
    132001: (404, "(#132001) Template name does not exist in the translation"),
    132015: (400, "(#132015) Template is Paused"),
    132016: (400, "(#132016) Template is Disabled"),
}


def error_body(code: int, details: str, http_status: int | None = None) -> tuple[int, dict]:
    status, title = ERRORS.get(code, (400, f"(#{code}) Error"))
    return http_status or status, {
        "error": {
            "message": title,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "A" + uuid.uuid4().hex[:22],
        }
    }
