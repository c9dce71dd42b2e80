"""The fake Graph API: Meta's limits and codes, its controls, and signed status callbacks."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from meta_integration.sandbox import make_server
from meta_integration.signatures import HEADER, verify
from tests.http_stub import StubHTTPServer
from tests.meta_integration.conftest import start_sandbox

TOKEN = "sandbox-access-token"
SECRET = "sandbox-app-secret"


@pytest.fixture
def fake():
    handle = start_sandbox(access_tokens=[TOKEN])
    yield handle
    handle.server.shutdown()
    handle.server.server_close()


def post(fake, body, *, token=TOKEN, version="v23.0", raw: bytes | None = None):
    data = (
        raw
        if raw is not None
        else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    )
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(
        f"{fake.url}/{version}/106540352242922/messages", data=data, headers=headers, timeout=5
    )


def send(to="16505551234", **message):
    message.setdefault("type", "text")
    if message["type"] == "text":
        message.setdefault("text", {"preview_url": False, "body": "hi"})
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **message}


def buttons(count, title_len=5):
    return {
        "type": "button",
        "body": {"text": "Pick one"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": f"b{i}", "title": f"{i}".ljust(title_len, "x")}}
                for i in range(count)
            ]
        },
    }


def a_list(rows_per_section, row_title="Row", description=None):
    return {
        "type": "list",
        "body": {"text": "Pick one"},
        "action": {
            "button": "Options",
            "sections": [
                {
                    "title": f"Section {s}",
                    "rows": [
                        {
                            "id": f"r{s}-{r}",
                            "title": row_title,
                            **({"description": description} if description else {}),
                        }
                        for r in range(count)
                    ],
                }
                for s, count in enumerate(rows_per_section)
            ],
        },
    }


def error_code(response) -> int:
    assert response.status_code >= 400
    error = response.json()["error"]
    assert isinstance(error["code"], int) and error["message"] and error["fbtrace_id"]
    assert "details" in error["error_data"]
    return error["code"]


# --- the Graph API ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v18.0", "v23.0", "v26.0"])
def test_a_send_is_accepted_in_metas_shape_on_any_version(fake, version):
    response = post(fake, send(), version=version)
    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "16505551234", "wa_id": "16505551234"}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.") and message["message_status"] == "accepted"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_bad_token_is_190_with_http_401(fake, token):
    response = post(fake, send(), token=token)
    assert response.status_code == 401
    assert error_code(response) == 190


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (send(text={"body": "x" * 4096}), None),
        (send(text={"body": "😮" * 4096}), None),  # characters, not bytes
        (send(text={"body": "x" * 4097}), 100),
        (send(text={"body": ""}), 131008),
        (send(text={}), 131008),
        (send(type="text", text=None), 131008),
        ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, 131008),  # no to
        ({**send(), "messaging_product": "sms"}, 100),
        (send(type="carrier_pigeon", carrier_pigeon={}), 100),
        (send(type="interactive", interactive=buttons(3)), None),
        (send(type="interactive", interactive=buttons(4)), 131009),
        (send(type="interactive", interactive=buttons(1, title_len=20)), None),
        (send(type="interactive", interactive=buttons(1, title_len=21)), 131009),
        (send(type="interactive", interactive={**buttons(1), "body": {}}), 131008),
        (
            send(type="interactive", interactive={**buttons(1), "footer": {"text": "f" * 61}}),
            131009,
        ),
        (send(type="interactive", interactive=a_list([5, 5])), None),
        (send(type="interactive", interactive=a_list([6, 5])), 131009),  # 11 rows in all
        (send(type="interactive", interactive=a_list([1], row_title="t" * 24)), None),
        (send(type="interactive", interactive=a_list([1], row_title="t" * 25)), 131009),
        (send(type="interactive", interactive=a_list([1], description="d" * 72)), None),
        (send(type="interactive", interactive=a_list([1], description="d" * 73)), 131009),
        (
            send(type="template", template={"name": "hello_world", "language": {"code": "en_US"}}),
            None,
        ),
        (send(type="template", template={"name": "hello_world"}), 131008),
        (send(type="image", image={"link": "https://example.com/a.png"}), None),
        (send(type="image", image={}), 131008),
        ({**send(), "biz_opaque_callback_data": "k" * 512}, None),
        ({**send(), "biz_opaque_callback_data": "k" * 513}, 100),
        ({**send(), "context": {"message_id": "wamid.X"}}, None),
    ],
)
def test_payload_validation_like_meta(fake, body, code):
    response = post(fake, body)
    if code is None:
        assert response.status_code == 200, response.text
    else:
        assert error_code(response) == code


def test_templates_can_be_enforced(fake):
    fake.app.config.templates = {"ticket_settled": 2}
    template = {"name": "ticket_settled", "language": {"code": "en_US", "policy": "deterministic"}}
    ok = {
        **template,
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "a"}] * 2}],
    }
    assert post(fake, send(type="template", template=ok)).status_code == 200
    assert error_code(post(fake, send(type="template", template=template))) == 132000
    unknown = post(fake, send(type="template", template={**template, "name": "nope"}))
    assert unknown.status_code == 404 and error_code(unknown) == 132001


def test_strict_encoding_refuses_what_is_not_compact_utf8(fake):
    body = send(text={"preview_url": False, "body": "olá"})
    assert post(fake, None, raw=json.dumps(body).encode()).status_code == 400  # spaces, \\u escapes
    assert post(fake, body).status_code == 200


def test_mark_as_read_is_exactly_three_keys(fake):
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC"}
    response = post(fake, read)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert error_code(post(fake, {**read, "to": "1"})) == 100
    assert error_code(post(fake, {**read, "message_id": "not-a-wamid"})) == 131009
    assert [r["message_id"] for r in fake.app.reads] == ["wamid.ABC"]


def test_unknown_paths_are_refused_with_a_meta_error(fake):
    response = requests.get(f"{fake.url}/v23.0/106540352242922/phone_numbers", timeout=5)
    assert error_code(response) == 100


# --- limits -------------------------------------------------------------------------------------


def test_pair_limit_is_per_recipient_with_a_burst(fake):
    fake.app.config.pair_burst = 3
    codes = [post(fake, send(to="111")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 400]
    assert error_code(post(fake, send(to="111"))) == 131056
    assert post(fake, send(to="222")).status_code == 200  # other users are unaffected


def test_throughput_limit_per_number(fake):
    fake.app.config.throughput_mps = 5
    responses = [post(fake, send(to=str(1000 + i))) for i in range(7)]
    assert [r.status_code for r in responses[:5]] == [200] * 5
    assert error_code(responses[5]) == 130429


# --- faults and controls ----------------------------------------------------------------------


def control(fake, method, action, body=None):
    return requests.request(method, f"{fake.url}/sandbox/meta/{action}", json=body, timeout=5)


def test_a_500_fault_is_http_500_with_code_1_or_2_and_is_not_recorded(fake):
    control(fake, "POST", "faults", {"error_rate": 1.0, "error_codes": [500]})
    response = post(fake, send())
    assert response.status_code == 500
    assert error_code(response) in (1, 2)
    assert fake.app.sent_messages() == []


@pytest.mark.parametrize(
    ("code", "http_status"), [(130429, 400), (131056, 400), (190, 401), (131000, 500)]
)
def test_other_faults_answer_with_their_meta_status(fake, code, http_status):
    control(fake, "POST", "faults", {"error_rate": 1.0, "error_codes": [code]})
    response = post(fake, send())
    assert (response.status_code, error_code(response)) == (http_status, code)


def test_fault_rate_latency_and_clearing(fake):
    control(
        fake,
        "POST",
        "faults",
        {"error_rate": 0.5, "error_codes": [500], "latency_ms": 100, "seed": 7},
    )
    start = time.monotonic()
    codes = [post(fake, send(to=str(2000 + i))).status_code for i in range(20)]
    assert time.monotonic() - start >= 20 * 0.1
    assert 0 < codes.count(500) < 20
    assert len(fake.app.sent_messages()) == codes.count(200)
    assert fake.app.stats()["faults"] == codes.count(500)
    control(fake, "DELETE", "faults")
    assert all(post(fake, send(to=str(3000 + i))).status_code == 200 for i in range(5))


def test_sent_filters_by_recipient_and_time_and_reset_clears(fake):
    post(fake, {**send(to="111"), "biz_opaque_callback_data": "a:0"})
    middle = time.time()
    time.sleep(0.01)
    post(fake, send(to="222"))
    post(fake, send(to="111"))
    everything = fake.sent()
    assert [m["to"] for m in everything] == ["111", "222", "111"]
    first = everything[0]
    assert set(first) >= {
        "to",
        "type",
        "payload",
        "wamid",
        "received_at",
        "biz_opaque_callback_data",
    }
    assert first["biz_opaque_callback_data"] == "a:0" and isinstance(first["received_at"], float)
    assert first["payload"]["text"]["body"] == "hi"
    assert [m["to"] for m in fake.sent(to="111")] == ["111", "111"]
    assert [m["to"] for m in fake.sent(since=middle)] == ["222", "111"]
    assert control(fake, "POST", "reset").status_code == 200
    assert fake.sent() == []


def test_config_control_and_bad_control_bodies(fake):
    assert control(fake, "POST", "config", {"pair_burst": 1}).status_code == 200
    assert fake.app.config.pair_burst == 1
    assert control(fake, "POST", "config", {"no_such_setting": 1}).status_code == 400
    assert control(fake, "POST", "faults", {"error_rate": 1, "bogus": 2}).status_code == 400
    assert control(fake, "GET", "nothing").status_code == 404


# --- status callbacks -------------------------------------------------------------------------


@pytest.fixture
def receiver():
    """Stands in for our webhook and records what the sandbox POSTs to it."""
    receiver = StubHTTPServer(path="/webhooks/whatsapp/")
    yield receiver
    receiver.close()


def wait_for_posts(receiver, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(receiver.posts) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return receiver.posts


def test_status_callbacks_are_signed_one_per_post_and_echo_the_callback_data(fake, receiver):
    fake.app.config.update(
        {
            "status_callbacks": True,
            "webhook_url": receiver.url,
            "app_secret": SECRET,
            "callback_delay_ms": 0,
        }
    )
    response = post(fake, {**send(to="16505551234"), "biz_opaque_callback_data": "wamid.IN:0"})
    wamid = response.json()["messages"][0]["id"]
    posts = wait_for_posts(receiver, 3)
    assert len(posts) == 3
    kinds = []
    for headers, body in posts:
        assert verify(body, headers[HEADER], SECRET)
        assert body.isascii()  # Meta's escaped-unicode serialisation
        event = json.loads(body)
        [entry] = event["entry"]
        [change] = entry["changes"]
        value = change["value"]
        [status] = value["statuses"]
        [contact] = value["contacts"]
        assert contact["wa_id"] == "16505551234" and contact["user_id"].startswith("US.")
        assert status["id"] == wamid
        assert status["biz_opaque_callback_data"] == "wamid.IN:0"
        assert status["recipient_id"] == "16505551234"
        assert status["timestamp"].isdigit()
        if status["status"] in ("sent", "delivered"):
            assert status["conversation"]["origin"]["type"] == "service"
            assert status["pricing"]["billable"] is True
        kinds.append(status["status"])
    assert kinds == ["sent", "delivered", "read"]
    # The sandbox counts a callback once it has read our answer, just after the receiver
    # recorded the POST: wait for the count rather than race it.
    deadline = time.monotonic() + 5
    while fake.app.stats()["callbacks_delivered"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.app.stats()["callbacks_delivered"] == 3


def test_an_async_failure_is_reported_as_a_failed_status(fake, receiver):
    fake.app.config.update(
        {
            "status_callbacks": True,
            "webhook_url": receiver.url,
            "app_secret": SECRET,
            "callback_delay_ms": 0,
        }
    )
    control(fake, "POST", "faults", {"failed_status_rate": 1.0, "failed_status_code": 131047})
    assert post(fake, send()).status_code == 200
    posts = wait_for_posts(receiver, 2)
    statuses = [
        json.loads(body)["entry"][0]["changes"][0]["value"]["statuses"][0] for _, body in posts
    ]
    assert [s["status"] for s in statuses] == ["sent", "failed"]
    assert statuses[1]["errors"][0]["code"] == 131047


def test_make_server_serves_until_shutdown():
    server = make_server("127.0.0.1", 0, status_callbacks=False)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/sandbox/meta/stats"
    assert requests.get(url, timeout=5).json()["requests"] == 0
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_read_receipts_do_not_count_as_throughput(fake):
    fake.app.config.throughput_mps = 2
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC"}
    assert all(post(fake, read).status_code == 200 for _ in range(5))
    assert [post(fake, send(to=str(4000 + i))).status_code for i in range(3)] == [200, 200, 400]
