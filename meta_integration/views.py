"""The WhatsApp webhook: verify, store in one transaction, enqueue after commit, answer 200.

Order matters: size limit and signature come before any parsing (an unsigned body is never
read as JSON), and nothing is written for a refused request. Meta retries any non-200 for up
to seven days, so a well-signed event we do not handle still gets 200 (and a log line), and
only broken JSON gets 400.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from meta_integration import parsing, services, signatures

logger = logging.getLogger(__name__)


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
        batch = parsing.parse_event(parsing.load_json(body))
    except parsing.PayloadError as exc:
        logger.warning("signed webhook refused: %s", exc)
        return HttpResponse(status=400)
    for part in batch.skipped:
        logger.warning("webhook part skipped: %s", part)
    if batch.unhandled:
        logger.info("webhook events not handled: %s", ", ".join(batch.unhandled[:20]))
    result = services.webhook_event_ingest(
        raw_body=parsing.clean_text(body.decode("utf-8")), batch=batch
    )
    logger.info("webhook event %s: %s", result.event_id, result.as_dict())
    return HttpResponse(status=200)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify_subscription(request)
    return _receive(request)
