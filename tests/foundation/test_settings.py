"""Settings read the environment strictly, and refuse to start insecurely."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from whatsappcrm_backend.env import env_bool, env_int, env_list, env_str


def run_django(env: dict[str, str], code: str = "import django; django.setup()"):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "SANDBOX"}}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "whatsappcrm_backend.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_with_debug_off_is_a_clear_startup_error():
    result = run_django({"DEBUG": "0"})
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_on_runs_with_the_dev_key():
    result = run_django({"DEBUG": "1"}, "import django; django.setup(); print('started')")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_check_deploy_is_clean_with_production_values():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
            "ALLOWED_HOSTS": "crm.example.com",
            "SANDBOX": "0",
            "META_ACCESS_TOKEN": "token",
            "META_APP_SECRET": "secret",
            "META_VERIFY_TOKEN": "verify",
            "APIFOOTBALL_KEY": "key",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_secret_from_file(tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret))
    assert env_str("SOME_SECRET") == "from-a-file"


def test_unreadable_secret_file_names_the_variable(monkeypatch):
    monkeypatch.setenv("SOME_SECRET_FILE", "/nonexistent/secret")
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET_FILE"):
        env_str("SOME_SECRET")


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("off", False)])
def test_env_bool_accepts_strict_values(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG") is expected


@pytest.mark.parametrize("raw", ["yes", "2", "enabled"])
def test_env_bool_rejects_anything_else(monkeypatch, raw):
    monkeypatch.setenv("FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env_bool("FLAG")


def test_env_int_rejects_units(monkeypatch):
    monkeypatch.setenv("TIMEOUT", "10s")
    with pytest.raises(ImproperlyConfigured, match="TIMEOUT must be an integer"):
        env_int("TIMEOUT", 5)
    monkeypatch.setenv("TIMEOUT", "10")
    assert env_int("TIMEOUT", 5) == 10


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , b.example,,")
    assert env_list("HOSTS") == ["a.example", "b.example"]
