"""The fake Graph API's templates: the catalogue it serves (paged) and the template sends it
refuses, in Meta's error shape and with Meta's codes and HTTP statuses; its controls, and the
signed `message_template_status_update` webhook it emits."""

from __future__ import annotations

import json
import time

import pytest
import requests

from meta_integration.signatures import HEADER, verify
from tests.http_stub import StubHTTPServer
from tests.meta_integration.conftest import start_sandbox

TOKEN = "sandbox-access-token"
SECRET = "sandbox-app-secret"
WABA = "102290129340398"
PHONE = "106540352242922"


@pytest.fixture
def fake():
    handle = start_sandbox(access_tokens=[TOKEN], waba_id=WABA)
    yield handle
    handle.server.shutdown()
    handle.server.server_close()


def send_template(fake, name, code, params=None, *, phone=PHONE):
    template = {"name": name, "language": {"code": code}}
    if params is not None:
        template["language"]["policy"] = "deterministic"
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": str(p)} for p in params]}
        ]
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "template",
        "template": template,
    }
    return requests.post(
        f"{fake.url}/v23.0/{phone}/messages",
        data=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=5,
    )


def list_templates(fake, waba=WABA, token=TOKEN, **params):
    return requests.get(
        f"{fake.url}/v23.0/{waba}/message_templates",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def assert_meta_error(response, code, http_status):
    assert response.status_code == http_status, response.text
    error = response.json()["error"]
    assert error["code"] == code and isinstance(error["code"], int)
    assert isinstance(error["message"], str) and error["message"]
    if code > 100_000:
        assert error["message"].startswith(f"(#{code})")
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert error["fbtrace_id"]
    return error


@pytest.mark.parametrize(
    ("name", "code", "params"),
    [
        ("ticket_settled", "en", [1, "won", "9.50"]),
        ("hello_world", "en_US", None),
        ("order_update", "en", ["Ana", "A-17"]),
    ],
)
def test_approved_templates_with_the_right_parameters_are_accepted(fake, name, code, params):
    response = send_template(fake, name, code, params)
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["id"].startswith("wamid.")


@pytest.mark.parametrize(
    ("name", "code", "params", "meta_code", "http_status"),
    [
        ("no_such_template", "en", None, 132001, 404),
        ("ticket_settled", "pt_BR", [1, 2, 3], 132001, 404),  # not in that language
        ("ticket_settled", "en", [1, 2], 132000, 400),
        ("ticket_settled", "en", None, 132000, 400),
        ("hello_world", "en_US", ["extra"], 132000, 400),
        ("promo_paused", "en", ["x"], 132015, 400),
        ("old_offer", "en", ["x"], 132001, 404),  # rejected: not sendable
    ],
)
def test_template_sends_are_refused_like_meta(fake, name, code, params, meta_code, http_status):
    error = assert_meta_error(send_template(fake, name, code, params), meta_code, http_status)
    assert name in error["error_data"]["details"] or meta_code == 132000
    assert fake.app.sent_messages() == []


def test_a_disabled_template_is_refused_with_132016(fake):
    fake.app.set_template({"name": "order_update", "language": "en", "status": "DISABLED"})
    assert_meta_error(send_template(fake, "order_update", "en", ["a", "b"]), 132016, 400)


def test_a_number_of_another_waba_uses_that_wabas_catalogue(fake):
    fake.app.config.phone_wabas = {"222": "999"}
    fake.app.set_template({"name": "only_there", "language": "en", "body": "x"}, waba_id="999")
    assert send_template(fake, "only_there", "en", phone="222").status_code == 200
    assert_meta_error(send_template(fake, "only_there", "en"), 132001, 404)


def test_the_catalogue_is_served_in_pages_with_cursors(fake):
    seen = []
    after = None
    pages = 0
    while True:
        params = {"limit": 2, "fields": "name,language,status,category,components"}
        if after:
            params["after"] = after
        page = list_templates(fake, **params).json()
        pages += 1
        seen.extend(page["data"])
        assert set(page["data"][0]) == {
            "id",
            "name",
            "language",
            "status",
            "category",
            "components",
        }
        if "next" not in page["paging"]:
            break
        assert page["paging"]["next"].startswith(fake.url)  # absolute, like Meta's
        after = page["paging"]["cursors"]["after"]
    assert pages == 3
    assert {(t["name"], t["language"], t["status"]) for t in seen} == {
        ("ticket_settled", "en", "APPROVED"),
        ("hello_world", "en_US", "APPROVED"),
        ("order_update", "en", "APPROVED"),
        ("promo_paused", "en", "PAUSED"),
        ("old_offer", "en", "REJECTED"),
    }
    # Following `next` as a client would gives the same second page.
    first = list_templates(fake, limit=2).json()
    second = requests.get(
        first["paging"]["next"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).json()
    assert [t["name"] for t in second["data"]] == [t["name"] for t in seen[2:4]]


def test_the_catalogue_refuses_a_bad_token_limit_or_cursor(fake):
    assert_meta_error(list_templates(fake, token="wrong"), 190, 401)
    assert_meta_error(list_templates(fake, limit=0), 100, 400)
    assert_meta_error(list_templates(fake, limit="x"), 100, 400)
    assert_meta_error(list_templates(fake, after="not-a-cursor"), 100, 400)


def test_controls_add_change_and_reset_templates_over_http(fake):
    control = f"{fake.url}/sandbox/meta/templates"
    added = requests.post(
        control,
        json={
            "name": "welcome",
            "language": "es",
            "body": "Hola {{1}} {{2}}",
            "status": "APPROVED",
        },
        timeout=5,
    ).json()
    assert added["name"] == "welcome" and added["id"]
    assert send_template(fake, "welcome", "es", ["a", "b"]).status_code == 200
    requests.post(
        control, json={"name": "welcome", "language": "es", "status": "PAUSED"}, timeout=5
    )
    assert_meta_error(send_template(fake, "welcome", "es", ["a", "b"]), 132015, 400)
    names = {t["name"] for t in requests.get(control, timeout=5).json()["templates"]}
    assert "welcome" in names
    assert (
        requests.post(
            control, json={"name": "x", "language": "en", "status": "NOPE"}, timeout=5
        ).status_code
        == 400
    )
    assert requests.post(control, json={"language": "en"}, timeout=5).status_code == 400
    requests.delete(control, timeout=5)
    assert_meta_error(send_template(fake, "welcome", "es", ["a", "b"]), 132001, 404)
    assert send_template(fake, "ticket_settled", "en", [1, 2, 3]).status_code == 200


def test_the_legacy_name_to_count_table_still_overrides_the_catalogue(fake):
    fake.app.config.templates = {"anything": 1}
    assert send_template(fake, "anything", "fr", ["x"]).status_code == 200
    assert_meta_error(send_template(fake, "ticket_settled", "en", [1, 2, 3]), 132001, 404)


def test_enforcement_can_be_turned_off(fake):
    fake.app.config.enforce_templates = False
    assert send_template(fake, "not_in_the_catalogue", "en").status_code == 200


def test_a_status_change_is_told_to_the_webhook_signed_like_meta(fake):
    stub = StubHTTPServer()
    try:
        fake.app.config.webhook_url = stub.url
        fake.app.config.app_secret = SECRET
        response = requests.post(
            f"{fake.url}/sandbox/meta/templates",
            json={
                "name": "ticket_settled",
                "language": "en",
                "status": "PAUSED",
                "webhook": True,
                "reason": "LOW_QUALITY",
            },
            timeout=5,
        )
        assert response.status_code == 200
        deadline = time.monotonic() + 10
        while not stub.posts and time.monotonic() < deadline:
            time.sleep(0.02)
        [(headers, body)] = stub.posts
        assert verify(body, headers[HEADER], SECRET)
        event = json.loads(body)
        assert event["object"] == "whatsapp_business_account"
        [entry] = event["entry"]
        assert entry["id"] == WABA and isinstance(entry["time"], int)
        [change] = entry["changes"]
        assert change["field"] == "message_template_status_update"
        value = change["value"]
        assert (value["event"], value["message_template_name"], value["reason"]) == (
            "PAUSED",
            "ticket_settled",
            "LOW_QUALITY",
        )
        assert value["message_template_language"] == "en"
        assert isinstance(value["message_template_id"], int)
    finally:
        stub.close()


def test_a_webhook_needs_a_url_and_a_secret(fake):
    fake.app.config.webhook_url = ""
    response = requests.post(
        f"{fake.url}/sandbox/meta/templates",
        json={"name": "ticket_settled", "language": "en", "status": "PAUSED", "webhook": True},
        timeout=5,
    )
    assert response.status_code == 400
    assert fake.app.catalogue.find(WABA, "ticket_settled", "en")["status"] == "APPROVED"
