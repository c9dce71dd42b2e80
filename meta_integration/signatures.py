"""X-Hub-Signature-256: HMAC-SHA256 of the raw request body with the app secret.

Always over the exact bytes received: Meta signs its own (escaped-unicode) serialisation, so
re-serialising the parsed JSON breaks the signature on emoji and non-ASCII text.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value Meta would send for `body`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return PREFIX + digest


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """Constant-time check of a header value; False for a missing or malformed header."""
    if not secret or not header:
        return False
    expected = sign(body, secret).encode("ascii")
    # Headers arrive as latin-1 decoded text; anything else is simply not a match.
    provided = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, provided)
