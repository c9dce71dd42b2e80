"""Drill: fuzzed webhook bodies and headers. No 500, and no row from an unsigned body.

Mutations of real-shaped events (truncation, byte flips, wrong types, missing and huge
fields, deep nesting, odd unicode, non-JSON, empty), sent three ways: correctly signed (the
answer must be 200 or 4xx, never 5xx), unsigned or wrongly signed (must be refused, and must
leave no row: each such body carries a marker wamid that is then looked for in the database),
and with odd headers (bad Content-Length, wrong Content-Type, a signature of another body).
--full: 10,000 requests; quick (default): 2,000.

    .venv/bin/python bench/drill_fuzz.py [--full] [--requests N]
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, drills, report
from bench.load import open_loop, status_body, text_body

MARK = "wamid.UNSIGNEDFUZZ"


def mutate(body: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(12)
    if kind == 0:
        return body[: rng.randrange(len(body))]
    if kind == 1:
        data = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 2:
        return b""
    if kind == 3:
        return rng.choice([b"null", b"[]", b"{}", b"42", b'"x"', b"{", b"\xff\xfe", b"true"])
    event = json.loads(body)
    change = event["entry"][0]["changes"][0]
    value = change["value"]
    if kind == 4:
        value.pop(rng.choice(list(value)))
    elif kind == 5:
        target = value.get("messages") or value.get("statuses")
        item = target[0]
        item[rng.choice(list(item))] = rng.choice([None, 1, [], {}, "", "x" * 5000, -1, 1e308])
    elif kind == 6:
        event["entry"] = rng.choice([None, {}, "x", [None], [{}], [{"changes": "x"}]])
    elif kind == 7:
        # Built as bytes: deeper than any JSON encoder here would write.
        depth = rng.choice([50, 900, 5000])
        deep = b'{"a":' * depth + b"{}" + b"}" * depth
        return body.replace(b'"messaging_product"', b'"extra":' + deep + b',"messaging_product"', 1)
    elif kind == 8:
        text = "".join(chr(rng.choice([0, 0xD7FF, 0xFFFF, 0x1F600, 0x202E, 10, 92]))
                       for _ in range(50))  # fmt: skip
        for item in value.get("messages", []):
            item["text"] = {"body": text}
    elif kind == 9:
        change["field"] = rng.choice(["", "account_update", None, 7])
    elif kind == 10:
        value["messages"] = [value.get("messages", [{}])[0]] * rng.choice([0, 2, 100])
    else:
        event["object"] = rng.choice(["page", None, ""])
    return json.dumps(event).encode()


def main() -> None:
    p = drills.parser(__doc__)
    p.add_argument("--requests", type=int, default=None)
    args = p.parse_args()
    total = args.requests or (10000 if args.full else 2000)
    rng = random.Random(41)

    with drills.drill_stack(args) as (stack, webhook, _sandbox):
        from meta_integration import simulation
        from meta_integration.models import InboundMessage, WebhookEvent
        from meta_integration.signatures import HEADER, sign

        users = simulation.make_users(50, rng)
        before_events = WebhookEvent.objects.count()
        calls = []
        kinds: list[str] = []
        for index in range(total):
            user = rng.choice(users)
            way = rng.choices(["signed", "unsigned", "badsig", "headers"], [5, 2, 2, 1])[0]
            wamid = f"{MARK}{index}" if way in ("unsigned", "badsig") else simulation.new_wamid(rng)
            base = (
                text_body(user, wamid, "hi")
                if rng.random() < 0.7
                else status_body(wamid, rng.choice(["sent", "delivered", "read"]), user.wa_id)
            )
            body = base if rng.random() < 0.2 else mutate(base, rng)
            if way in ("unsigned", "badsig") and MARK.encode() not in body:
                body = base  # keep the marker findable: an unsigned valid body is the test
            headers: dict[str, str] = {}
            signed = way in ("signed", "headers")
            if way == "badsig":
                headers[HEADER] = rng.choice(
                    ["", "sha256=", "sha256=" + "0" * 64, "md5=abc", sign(b"other", "x"),
                     sign(body, "wrong-secret"), "sha256=" + "z" * 64]
                )  # fmt: skip
            if way == "headers":
                headers.update(
                    rng.choice(
                        [{"Content-Type": "text/plain"}, {"Content-Type": ""},
                         {HEADER: sign(b"{}", webhook.secret)}, {"X-Hub-Signature-256": "sha256=" + "A" * 64},
                         {"Content-Encoding": "gzip"}, {"Transfer-Encoding": "chunked"}]
                    )
                )  # fmt: skip
            kinds.append(way)
            calls.append(
                (index / 200.0, lambda b=body, s=signed, h=headers: webhook.post(b, signed=s, headers=h))
            )  # fmt: skip
        started = time.time()
        answers = open_loop(calls, workers=16)
        duration = time.time() - started
        time.sleep(5)  # let ingest tasks finish
        leaked = InboundMessage.objects.filter(wamid__startswith=MARK).count()
        leaked_events = WebhookEvent.objects.filter(body__contains=MARK).count()
        events_after = WebhookEvent.objects.count()
        header = report.header_block(stack)
    by_way: dict[str, Counter] = {}
    for way, (code, _) in zip(kinds, answers, strict=True):
        by_way.setdefault(way, Counter())[code] += 1
    server_errors = sum(n for c in by_way.values() for code, n in c.items() if code >= 500)
    connection_errors = sum(c.get(0, 0) for c in by_way.values())
    unsigned_accepted = sum(by_way.get(w, Counter()).get(200, 0) for w in ("unsigned", "badsig"))
    ok = (
        server_errors == 0
        and leaked == 0
        and leaked_events == 0
        and unsigned_accepted == 0
        and connection_errors == 0
    )
    lines = [f"- {way}: " + ", ".join(f"{code}: {n}" for code, n in sorted(c.items()))
             for way, c in sorted(by_way.items())]  # fmt: skip
    print(*lines, f"leaked rows {leaked}, leaked events {leaked_events}", sep="\n")
    body_text = "\n".join(
        [
            header,
            "",
            drills.scaled_note(args, "10,000 requests", f"{total} requests")
            + f", sent at up to 200/s in {duration:.0f} s.",
            "",
            "Answers by kind (HTTP status: count; 0 = connection error):",
            *lines,
            "",
            f"- 5xx answers: {server_errors}; connection errors: {connection_errors}",
            f"- unsigned or wrongly signed bodies answered 200: {unsigned_accepted}",
            f"- rows from unsigned bodies: {leaked} inbound, {leaked_events} webhook events "
            f"(webhook events stored in the run: {events_after - before_events})",
            f"- verdict: **{'pass' if ok else 'FAIL'}**",
        ]
    )
    common.write(args, "drill-fuzz", "Drill: fuzzed webhook bodies and headers", body_text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
