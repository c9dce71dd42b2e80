"""Pure parts of `manage.py simulate_chat`: simulated customers, their webhook events, the report.

No I/O: the command does the HTTP. A reply is matched to its inbound message by the key the
flow gives its first action, biz_opaque_callback_data == f"{inbound_wamid}:0", which the
sandbox records with every message it accepts.
"""

from __future__ import annotations

import base64
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meta_integration.envelopes import webhook_envelope

# No "help"/"support"/"agent"/"human": the demo flows hand those over to a human and the bot
# goes silent, which a load test would count as missing replies.
WORDS = (
    "odds", "today", "fixtures", "ticket", "balance", "weather", "score", "league", "bet", "win",
    "football", "results", "please", "thanks", "weekend", "match", "team", "goal", "live", "news",
)  # fmt: skip
GREETINGS = ("hi", "menu", "hello")


@dataclass(frozen=True)
class SimUser:
    wa_id: str
    user_id: str
    name: str


def make_users(count: int, rng: random.Random) -> list[SimUser]:
    """`count` distinct customers with plausible E.164 digits and business-scoped ids."""
    users: list[SimUser] = []
    seen: set[str] = set()
    while len(users) < count:
        wa_id = "2547" + "".join(str(rng.randrange(10)) for _ in range(8))
        if wa_id in seen:
            continue
        seen.add(wa_id)
        user_id = "US." + "".join(str(rng.randrange(10)) for _ in range(19))
        users.append(SimUser(wa_id=wa_id, user_id=user_id, name=f"Sim Customer {len(users) + 1}"))
    return users


def message_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(GREETINGS)
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))


def new_wamid(rng: random.Random) -> str:
    return "wamid." + base64.b64encode(bytes(rng.randrange(256) for _ in range(24))).decode()


def plan_messages(
    users: Sequence[SimUser], total: int, rng: random.Random
) -> list[tuple[SimUser, str]]:
    """`total` messages spread round-robin over the users (each user's own order kept).

    A total rather than a per-user count: Meta's pair limit (about one message per 6 s to one
    user, bursts to ~45) makes hundreds of messages to one customer unrealistic.
    """
    return [(users[index % len(users)], message_text(rng)) for index in range(total)]


def text_event(
    *,
    user: SimUser,
    wamid: str,
    text: str,
    timestamp: int,
    phone_number_id: str,
    display_phone_number: str,
    waba_id: str,
) -> dict[str, Any]:
    """A real-shaped inbound text webhook (contacts[0] carries user_id, as in 2026)."""
    return webhook_envelope(
        waba_id=waba_id,
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        value={
            "contacts": [
                {"profile": {"name": user.name}, "wa_id": user.wa_id, "user_id": user.user_id}
            ],
            "messages": [
                {
                    "from": user.wa_id,
                    "id": wamid,
                    "timestamp": str(timestamp),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    )


def reply_key(inbound_wamid: str) -> str:
    return f"{inbound_wamid}:0"


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Report:
    sent: int
    replied: int
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    webhook_errors: int = 0
    redelivered: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicated and not self.webhook_errors

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "redelivered": self.redelivered,
            "replied": self.replied,
            "missing": len(self.missing),
            "duplicated": len(self.duplicated),
            "webhook_errors": self.webhook_errors,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p95_ms": percentile(self.latencies_ms, 95),
            "p99_ms": percentile(self.latencies_ms, 99),
        }


def correlate(posted_at: dict[str, float], sandbox_messages: Iterable[dict[str, Any]]) -> Report:
    """Match sandbox messages to the inbound wamids we posted (wamid -> epoch of the POST).

    Latency: the sandbox's received_at of the first reply minus the time of the first POST.
    Duplicated: any of our keys the sandbox accepted more than once (a reply sent twice).
    """
    counts: Counter[str] = Counter()
    first_reply: dict[str, float] = {}
    for message in sandbox_messages:
        key = message.get("biz_opaque_callback_data") or ""
        inbound, sep, _ = key.rpartition(":")
        if not sep or inbound not in posted_at:
            continue  # someone else's traffic
        counts[key] += 1
        if key == reply_key(inbound):
            received = float(message.get("received_at") or 0.0)
            first_reply[inbound] = min(first_reply.get(inbound, received), received)
    latencies = [
        round((first_reply[wamid] - posted) * 1000.0, 1)
        for wamid, posted in posted_at.items()
        if wamid in first_reply
    ]
    return Report(
        sent=len(posted_at),
        replied=len(first_reply),
        missing=sorted(wamid for wamid in posted_at if wamid not in first_reply),
        duplicated=sorted(key for key, count in counts.items() if count > 1),
        latencies_ms=latencies,
    )


def format_report(report: Report) -> str:
    summary = report.summary()

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    return (
        f"sent={summary['sent']} redelivered={summary['redelivered']} "
        f"replied={summary['replied']} missing={summary['missing']} "
        f"duplicated={summary['duplicated']} webhook_errors={summary['webhook_errors']}\n"
        f"reply latency ms: p50={ms(summary['p50_ms'])} p95={ms(summary['p95_ms'])} "
        f"p99={ms(summary['p99_ms'])}"
    )
