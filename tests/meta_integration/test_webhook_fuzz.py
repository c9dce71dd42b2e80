"""Whatever arrives, signed or not, the webhook never answers 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta_integration.signatures import HEADER, sign
from tests.meta_integration.conftest import WEBHOOK_URL

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SECRET = "sandbox-app-secret"
ACCEPTABLE = {200, 400, 403, 413}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "text",
            "interactive",
            "button",
            "failed",
            "read",
            "106540352242922",
            "wamid.X",
            "1750000000",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)


def shaped(value_strategy):
    """Envelopes shaped like Meta's with random insides, to reach the deeper code."""
    message = st.fixed_dictionaries(
        {},
        optional={
            "from": st.one_of(st.just("16505551234"), scalars),
            "id": st.one_of(st.text(min_size=1, max_size=30).map(lambda s: "wamid." + s), scalars),
            "timestamp": st.one_of(st.just("1750000000"), scalars),
            "type": st.one_of(
                st.sampled_from(["text", "interactive", "button", "image", "reaction", "location"]),
                scalars,
            ),
            "text": st.one_of(
                st.fixed_dictionaries({"body": st.text(max_size=50)}), value_strategy
            ),
            "interactive": value_strategy,
            "button": value_strategy,
            "context": value_strategy,
        },
    )
    status = st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.just("wamid.X"), scalars),
            "status": st.one_of(st.sampled_from(["sent", "delivered", "read", "failed"]), scalars),
            "timestamp": st.one_of(st.just("1750000000"), scalars),
            "errors": value_strategy,
            "biz_opaque_callback_data": st.one_of(st.text(max_size=20), scalars),
        },
    )
    value = st.fixed_dictionaries(
        {
            "metadata": st.one_of(st.just({"phone_number_id": "106540352242922"}), value_strategy),
        },
        optional={
            "contacts": st.one_of(st.lists(value_strategy, max_size=2), value_strategy),
            "messages": st.one_of(st.lists(message, max_size=3), value_strategy),
            "statuses": st.one_of(st.lists(status, max_size=3), value_strategy),
        },
    )
    change = st.fixed_dictionaries(
        {"field": st.one_of(st.just("messages"), scalars), "value": value}
    )
    entry = st.fixed_dictionaries({"changes": st.lists(change, max_size=2)})
    return st.fixed_dictionaries(
        {
            "object": st.one_of(st.just("whatsapp_business_account"), scalars),
            "entry": st.lists(entry, max_size=2),
        }
    )


def post(client, body: bytes, signed: bool):
    headers = {HEADER: sign(body, SECRET)} if signed else {}
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)


@FUZZ
@given(value=json_values, ascii_only=st.booleans())
def test_random_json_signed(client, number, published, value, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert post(client, body, signed=True).status_code in ACCEPTABLE


@FUZZ
@given(event=shaped(json_values))
def test_meta_shaped_events_with_random_insides_signed(client, number, published, event):
    body = json.dumps(event).encode()
    assert post(client, body, signed=True).status_code == 200


@FUZZ
@given(body=st.binary(max_size=300), signed=st.booleans())
def test_random_bytes_signed_and_unsigned(client, number, published, body, signed):
    status = post(client, body, signed=signed).status_code
    assert status in ACCEPTABLE
    if not signed:
        assert status == 403
