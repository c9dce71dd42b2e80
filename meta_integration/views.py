"""The WhatsApp webhook: verify, store the raw event (one INSERT), answer, then enqueue.

Order matters: size limit and signature come before any parsing (an unsigned body is never
read as JSON), and nothing is written for a refused request. The body is decoded here only
to refuse broken JSON with 400 (strict decoding, bounded nesting, a JSON object); everything
else (parsing, contacts, messages, statuses) runs in the ingest task (meta_integration.ingest),
so the answer never waits on a lock another transaction holds, and that task is published
once the answer has been sent (AfterResponse). Meta retries any non-200 for up to seven days,
so a well-signed event we do not handle still gets 200.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from meta_integration import ingest, parsing, signatures
from whatsappcrm_backend.celery import Priority
from whatsappcrm_backend.instrumentation import instrumented

logger = logging.getLogger(__name__)


class AfterResponse(HttpResponse):
    """A response that runs `after` when the server closes it, i.e. once its bytes are sent.

    The WSGI server calls close() after writing the body (PEP 3333), so the ingest publish,
    a Redis round trip, is not part of Meta's wait. The event row is committed before the
    response exists, so a crash in between loses nothing (the sweeper re-enqueues it).
    """

    def __init__(self, after: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._after = after

    def close(self) -> None:
        try:
            self._after()
        except Exception:  # the answer is sent; the sweeper has the event
            logger.exception("webhook: publishing the stored event failed")
        finally:
            super().close()


def _verify_subscription(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    expected = settings.META_VERIFY_TOKEN
    if (
        expected
        and mode == "subscribe"
        and hmac.compare_digest(token.encode("utf-8", "replace"), expected.encode("utf-8"))
    ):
        return HttpResponse(challenge, content_type="text/plain")
    logger.warning("webhook verification refused (mode %r)", mode[:32])
    return HttpResponse(status=403)


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


@instrumented("webhook.receive", warn_ms=100, error_ms=500)
def _receive(request: HttpRequest) -> HttpResponse:
    secret = settings.META_APP_SECRET
    if not secret:
        # The system check makes this a startup error; refuse rather than accept unsigned data.
        logger.error("META_APP_SECRET is empty: webhook refused")
        return HttpResponse(status=503)
    limit = int(settings.META_WEBHOOK_MAX_BYTES)
    length = _content_length(request)
    if length is None:
        return HttpResponse(status=400)
    if length > limit:
        return HttpResponse(status=413)
    try:
        body = request.body
    except RequestDataTooBig:
        return HttpResponse(status=413)
    if len(body) > limit:
        return HttpResponse(status=413)
    if not signatures.verify(body, request.headers.get(signatures.HEADER), secret):
        logger.warning("webhook with a missing or wrong signature refused (%s bytes)", len(body))
        return HttpResponse(status=403)
    try:
        data = parsing.load_json(body)
    except parsing.PayloadError as exc:
        logger.warning("signed webhook refused: %s", exc)
        return HttpResponse(status=400)
    if not isinstance(data, dict):
        logger.warning("signed webhook refused: the body is not a JSON object")
        return HttpResponse(status=400)
    priority = ingest.ingest_priority(body)
    event_id = ingest.webhook_event_store(
        raw_body=parsing.clean_text(body.decode("utf-8")),
        carries_messages=priority == Priority.REPLY,
    )
    logger.debug("webhook event %s stored (%s bytes)", event_id, len(body))
    return AfterResponse(
        lambda: ingest.webhook_event_dispatch(event_id=event_id, priority=priority), status=200
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify_subscription(request)
    return _receive(request)
