"""A missing Meta secret is a check error; the demo configures the sandbox number."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from meta_integration import checks, demo
from meta_integration.models import WhatsAppNumber


def test_no_errors_with_the_secrets_set():
    assert checks.meta_secrets_check() == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("META_APP_SECRET", "meta_integration.E001"),
        ("META_VERIFY_TOKEN", "meta_integration.E002"),
        ("META_ACCESS_TOKEN", "meta_integration.E003"),
    ],
)
def test_an_empty_secret_is_an_error(settings, name, code):
    setattr(settings, name, "")
    [error] = checks.meta_secrets_check()
    assert error.id == code and name in error.msg


def test_manage_py_check_fails_without_the_app_secret(settings):
    settings.META_APP_SECRET = ""
    with pytest.raises(SystemCheckError, match="META_APP_SECRET"):
        call_command("check")


@pytest.mark.django_db
def test_load_demo_upserts_the_configured_number(settings, broker_conn):
    first = demo.load_demo()
    assert first == {
        "number": settings.META_PHONE_NUMBER_ID,
        "created": True,
        "templates_sync_queued": True,
    }
    assert demo.load_demo()["created"] is False
    number = WhatsAppNumber.objects.get()
    assert (number.waba_id, number.display_phone_number, number.active) == (
        settings.META_WABA_ID,
        settings.META_DISPLAY_PHONE_NUMBER,
        True,
    )


@pytest.mark.django_db
def test_load_demo_queues_a_first_template_sync(broker_conn):
    demo.load_demo()
    queued = [
        json.loads(raw)["headers"]["task"]
        for key in broker_conn.keys("maintenance*")
        if broker_conn.type(key) == b"list"
        for raw in broker_conn.lrange(key, 0, -1)
    ]
    assert queued == ["sync_message_templates_task"]
