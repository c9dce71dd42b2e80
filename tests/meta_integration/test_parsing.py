"""parsing.py: pure, strict about the parts we use, total over everything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from meta_integration import parsing
from tests.meta_integration.conftest import load_fixture


def parse(name: str) -> parsing.WebhookBatch:
    return parsing.parse_event(load_fixture(name))


@pytest.mark.parametrize(
    ("fixture", "message_type", "text", "reply_id", "context_wamid"),
    [
        ("message__text", "text", "Body Text", "", ""),
        ("message__emoji", "text", "Olá 😮 — ¿qué tal? 你好 👍🏽", "", ""),
        (
            "message__interactive_button_reply",
            "interactive",
            "title",
            "callback_data",
            "wamid.xyzxyz",
        ),
        (
            "message__interactive_list_reply",
            "interactive",
            "title",
            "callback_data",
            "wamid.xyzxyz",
        ),
        ("message__button", "button", "title", "callback_data", "wamid.xyzxyz=="),
        ("message__document_caption", "document", "caption", "", ""),
        ("message__image", "image", "", "", ""),
        ("message__location", "location", "Facebook HQ", "", ""),
        ("message__reaction", "reaction", "😮", "", "wamid.yzxyzx="),
        ("message__reaction_removed", "reaction", "", "", "wamid.yzxyzx="),
        ("message__unsupported", "unsupported", "", "", ""),
        ("message__reply_context", "text", "replied text", "", "wamid.xyzxyz=="),
        ("message__interactive_without_body", "interactive", "", "", "wamid.gvwegfretge=="),
        ("message__system", "system", "User A changed from 972987654321 to 972912345678", "", ""),
    ],
)
def test_each_message_type_yields_text_reply_id_and_context(
    fixture, message_type, text, reply_id, context_wamid
):
    batch = parse(fixture)
    [message] = batch.messages
    assert message.message_type == message_type
    assert message.text == text
    assert message.reply_id == reply_id
    assert message.context_wamid == context_wamid
    assert message.phone_number_id == "106540352242922"
    assert message.payload["id"] == message.wamid
    assert batch.skipped == []


def test_timestamp_string_is_epoch_seconds_utc():
    [message] = parse("message__text").messages
    assert message.sent_at == datetime.fromtimestamp(1697043223, tz=UTC)


def test_contact_profile_and_business_scoped_user_id():
    batch = parse("message__emoji")
    profile = batch.contacts["972987654321"]
    assert profile.profile_name == "Zoë Ångström 🎉"
    assert profile.user_id == "US.13491208655302741918"


def test_every_entry_change_message_and_status_of_a_batch_is_read():
    batch = parse("message__batched")
    assert [m.wamid for m in batch.messages] == ["wamid.BATCH1", "wamid.BATCH2", "wamid.BATCH3"]
    assert [s.status for s in batch.statuses] == ["delivered"]
    assert set(batch.contacts) == {"16505550001", "16505550002"}


@pytest.mark.parametrize("kind", ["sent", "delivered", "read", "failed"])
def test_statuses(kind):
    [status] = parse(f"status__{kind}").statuses
    assert status.status == kind
    assert status.wamid == "wamid.STATUS"
    if kind == "failed":
        assert status.error_code == 130472
        assert "experiment" in status.error_details
    else:
        assert status.error_code is None


def test_status_echo_carries_biz_opaque_callback_data():
    [status] = parse("status__sent_with_callback_data").statuses
    assert status.biz_opaque_callback_data == "KEY"


@pytest.mark.parametrize(
    ("fixture", "unhandled"),
    [
        ("account_update__restriction", "field:account_update"),
        ("message_echoes__text", "field:smb_message_echoes"),
        ("status__played", "status:played"),
    ],
)
def test_kinds_we_do_not_handle_are_named_not_parsed(fixture, unhandled):
    batch = parse(fixture)
    assert batch.messages == [] and batch.statuses == []
    assert unhandled in batch.unhandled


def test_other_objects_are_unhandled():
    batch = parsing.parse_event({"object": "page", "entry": []})
    assert batch.unhandled == ["object:page"]


@pytest.mark.parametrize(
    "broken",
    [
        {"id": "wamid.A", "timestamp": "1", "type": "text"},  # no sender
        {"from": "1", "timestamp": "1", "type": "text"},  # no id
        {"from": "1", "id": "wamid.A", "timestamp": "soon", "type": "text"},
        {"from": "1", "id": "wamid.A", "timestamp": "9" * 40, "type": "text"},  # overflow
        {"from": "1" * 33, "id": "wamid.A", "timestamp": "1", "type": "text"},  # too long
        {"from": "1", "id": "w" * 256, "timestamp": "1", "type": "text"},
        "not a message",
        None,
    ],
)
def test_a_malformed_message_is_skipped_with_a_reason(broken):
    event = load_fixture("message__text")
    event["entry"][0]["changes"][0]["value"]["messages"] = [broken]
    batch = parsing.parse_event(event)
    assert batch.messages == []
    assert len(batch.skipped) == 1


def test_wrong_types_inside_a_message_never_leak_through():
    event = load_fixture("message__interactive_button_reply")
    message = event["entry"][0]["changes"][0]["value"]["messages"][0]
    message["interactive"]["button_reply"] = {"id": 5, "title": ["x"]}
    [parsed] = parsing.parse_event(event).messages
    assert parsed.reply_id == "" and parsed.text == ""


@pytest.mark.parametrize(
    "body",
    [b"{", b"\xff\xfe", b"[1, NaN]", b'{"a": Infinity}', b"[" * 100 + b"]" * 100, b""],
)
def test_load_json_refuses_what_is_not_plain_json(body):
    with pytest.raises(parsing.PayloadError):
        parsing.load_json(body)


def test_load_json_removes_nul_and_lone_surrogates_databases_refuse():
    data = parsing.load_json(json.dumps({"a\u0000": ["x\u0000y", "\ud800z"]}).encode())
    assert data == {"a": ["xy", "?z"]}


def test_a_json_value_that_is_not_an_object_is_a_payload_error():
    with pytest.raises(parsing.PayloadError):
        parsing.parse_event([1, 2])
