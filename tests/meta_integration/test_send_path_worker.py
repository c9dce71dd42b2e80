"""Per-conversation order on two real workers: a chain keeps a burst in order across Meta's
pair limit (131056, a 6 s backoff) and its throughput limit (130429), and costs no broker
traffic while it waits."""

from __future__ import annotations

import pytest
from django.db import transaction

from meta_integration import graph_api, services
from meta_integration.messages import text_message
from meta_integration.models import OutboundMessage, OutboundStatus
from tests.conftest import wait_for
from tests.factories import make_contact
from tests.meta_integration.conftest import start_sandbox

pytestmark = pytest.mark.worker


@pytest.fixture
def graph(redis_conn):
    graph_api._process["breaker"] = None
    handle = start_sandbox(strict_encoding=True)
    yield handle
    handle.server.shutdown()
    handle.server.server_close()


def worker_env(graph) -> dict[str, str]:
    # The project's settings with Meta's own minimum delays kept (131056 waits its full 6 s:
    # the cap is above it), only the exponential base made short.
    return {
        "DJANGO_SETTINGS_MODULE": "whatsappcrm_backend.settings",
        "META_GRAPH_BASE_URL": graph.url,
        "META_SEND_RETRY_BASE_SECONDS": "0.2",
        "META_SEND_RETRY_MAX_SECONDS": "10",
        "META_BREAKER_RESET_SECONDS": "1",
    }


def wait_or_log(workers, predicate, timeout: float = 60.0):
    try:
        return wait_for(predicate, timeout=timeout, interval=0.01)
    except AssertionError as exc:
        logs = "\n".join(f"--- {w.name} ---\n{w.log()[-5000:]}" for w in workers)
        raise AssertionError(f"{exc}\n{logs}") from None


def send_tasks_received(workers) -> int:
    return sum(w.log().count("Task send_whatsapp_message_task[") for w in workers) // 2


@pytest.mark.parametrize("code", [131056, 130429])
def test_a_burst_keeps_its_order_when_meta_refuses_the_first_send(
    celery_worker_factory, graph, code
):
    workers = [celery_worker_factory(env=worker_env(graph)) for _ in range(2)]
    contact = make_contact()
    graph.app.set_faults({"error_rate": 1.0, "error_codes": [code]})
    with transaction.atomic():  # a burst: five replies published together
        keys = [f"wamid.BURST:{i}" for i in range(5)]
        for key in keys:
            services.outbound_message_create(
                contact=contact, idempotency_key=key, message=text_message(key)
            )
    # Meta refuses the first attempt only.
    wait_or_log(workers, lambda: graph.app.stats()["requests"] >= 1)
    graph.app.clear_faults()

    wait_or_log(
        workers,
        lambda: OutboundMessage.objects.filter(status=OutboundStatus.SENT).count() == 5,
    )
    sent = [m["biz_opaque_callback_data"] for m in graph.app.sent_messages()]
    assert sent == keys  # in order, each once
    first = OutboundMessage.objects.get(idempotency_key=keys[0])
    assert (first.attempts, first.error_code) == (2, None)
    assert graph.app.stats()["requests"] == 6  # the refused attempt + five sends
    # Waiting was free: 5 publishes, 1 retry, at most one publish per finished row, no polling.
    assert send_tasks_received(workers) <= 5 + 1 + 5


def test_the_chain_survives_a_lost_task_through_the_sweeper(celery_worker_factory, graph, settings):
    """A head whose task was lost (published nowhere) is re-published by the sweeper, and the
    rows behind it follow in order."""
    from meta_integration import sweeper

    workers = [celery_worker_factory(env=worker_env(graph)) for _ in range(2)]
    contact = make_contact()
    first = OutboundMessage.objects.create(
        contact=contact,
        number=contact.number,
        idempotency_key="lost:0",
        message_type="text",
        payload=text_message("lost"),
    )
    services.outbound_message_create(
        contact=contact, idempotency_key="later:0", message=text_message("later")
    )
    # The later row's task ran and waits: nothing is sent.
    wait_or_log(workers, lambda: send_tasks_received(workers) >= 1)
    assert graph.app.stats()["requests"] == 0

    settings.META_SWEEP_GRACE_SECONDS = 0
    report = sweeper.stranded_messages_sweep()
    assert report["queued"] == 1  # the head only: the row behind it is not re-published
    wait_or_log(
        workers,
        lambda: OutboundMessage.objects.filter(status=OutboundStatus.SENT).count() == 2,
    )
    assert [m["biz_opaque_callback_data"] for m in graph.app.sent_messages()] == [
        first.idempotency_key,
        "later:0",
    ]
