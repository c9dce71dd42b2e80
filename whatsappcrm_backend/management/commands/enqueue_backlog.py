"""Queue realistic bulk work, so that isolation is measured rather than assumed.

    manage.py enqueue_backlog --bulk-sends 20000 --football 50000

--bulk-sends N  N outbound WhatsApp rows shaped like settlement notifications (the
                `ticket_settled` template, Priority.BULK), each with its send task published
                after commit, exactly as `outbound_message_create` does, in batches.
--football M    M football tasks on the `football_data` queue, published by name with
                `app.send_task` (the route table in whatsappcrm_backend/celery.py decides the
                queue and priority), so this works whether or not the football app has
                registered the task yet.

Contacts for the sends are synthetic (`--contacts`, wa_ids 26599xxxxxxx), created once and
reused. Prints what it queued and the depth of every priority list of each queue after.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from meta_integration import messages as builders
from meta_integration.models import Contact, OutboundMessage, WhatsAppNumber
from meta_integration.services import SEND_TASK
from whatsappcrm_backend.celery import (
    BULK_SEND_QUEUE,
    FOOTBALL_QUEUE,
    LATENCY_QUEUE,
    MAINTENANCE_QUEUE,
    TASK_ROUTES,
    Priority,
    app,
)
from whatsappcrm_backend.publishing import ignores_result

BATCH = 1000
WA_ID_PREFIX = "26599"
# Settlement notifications outside the 24-hour window go out as this approved template
# (football_data_app.services.notifications; named here, not imported: dependencies point
# from football to the project package, never back).
TEMPLATE_NAME = "ticket_settled"
TEMPLATE_LANGUAGE = "en"
DEFAULT_FOOTBALL_TASK = "fetch_odds_for_single_event_task"


def backlog_wa_id(index: int) -> str:
    return f"{WA_ID_PREFIX}{index:07d}"


def queue_depths(
    queues: tuple[str, ...] = (LATENCY_QUEUE, BULK_SEND_QUEUE, FOOTBALL_QUEUE, MAINTENANCE_QUEUE),
):
    """{queue: {priority: length}} for every non-empty priority list of each queue."""
    sep = app.conf.broker_transport_options.get("sep", ":")
    with app.connection_for_read() as connection:
        client = connection.default_channel.client
        depths: dict[str, dict[int, int]] = {}
        for queue in queues:
            names = [queue if p == 0 else f"{queue}{sep}{p}" for p in range(10)]
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.llen(name)
            lengths = pipe.execute()
            depths[queue] = {p: n for p, n in enumerate(lengths) if n}
    return depths


class Command(BaseCommand):
    help = "Enqueue bulk sends (BULK priority) and football tasks to measure isolation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bulk-sends", type=int, default=0, help="outbound BULK rows")
        parser.add_argument("--football", type=int, default=0, help="tasks on football_data")
        parser.add_argument(
            "--contacts", type=int, default=1000, help="synthetic contacts the sends go to"
        )
        parser.add_argument(
            "--football-task",
            default=DEFAULT_FOOTBALL_TASK,
            help="task name published on the football queue (must be routed there)",
        )
        parser.add_argument("--tag", default="", help="idempotency-key prefix (default: random)")

    def handle(self, *args: Any, **options: Any) -> None:
        sends, football = options["bulk_sends"], options["football"]
        contacts = options["contacts"]
        task_name = options["football_task"]
        if sends < 0 or football < 0 or contacts < 1:
            raise CommandError("--bulk-sends and --football must be >= 0, --contacts >= 1")
        route = TASK_ROUTES.get(task_name, {})
        if football and route.get("queue") != FOOTBALL_QUEUE:
            raise CommandError(f"{task_name} is not routed to {FOOTBALL_QUEUE}: {route or 'none'}")
        tag = options["tag"] or uuid.uuid4().hex[:8]
        started = time.monotonic()
        if sends:
            self.enqueue_sends(count=sends, contacts=contacts, tag=tag)
        if football:
            self.enqueue_football(count=football, task_name=task_name)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"queued {sends} bulk sends and {football} football tasks in {elapsed:.1f}s"
        )
        for queue, depths in queue_depths().items():
            listed = ", ".join(f"priority {p}: {n}" for p, n in sorted(depths.items()))
            self.stdout.write(f"  {queue}: {listed or 'empty'}")

    def _number(self) -> WhatsAppNumber:
        number = (
            WhatsAppNumber.objects.filter(phone_number_id=settings.META_PHONE_NUMBER_ID).first()
            or WhatsAppNumber.objects.order_by("pk").first()
        )
        if number is None:
            raise CommandError("no WhatsAppNumber configured: run bootstrap_demo first")
        return number

    def _contacts(self, count: int, number: WhatsAppNumber) -> list[int]:
        wa_ids = [backlog_wa_id(index) for index in range(count)]
        Contact.objects.bulk_create(
            [
                Contact(wa_id=wa_id, number=number, profile_name=f"Backlog {wa_id[-4:]}")
                for wa_id in wa_ids
            ],
            batch_size=BATCH,
            ignore_conflicts=True,
        )
        ids = dict(Contact.objects.filter(wa_id__in=wa_ids).values_list("wa_id", "pk"))
        return [ids[wa_id] for wa_id in wa_ids]

    def enqueue_sends(self, *, count: int, contacts: int, tag: str) -> None:
        number = self._number()
        contact_ids = self._contacts(min(contacts, count), number)
        for start in range(0, count, BATCH):
            with transaction.atomic():
                rows = OutboundMessage.objects.bulk_create(
                    [
                        self._row(index, contact_ids[index % len(contact_ids)], number, tag)
                        for index in range(start, min(count, start + BATCH))
                    ]
                )
                pks = [row.pk for row in rows]
                if any(pk is None for pk in pks):  # a backend without RETURNING
                    keys = [row.idempotency_key for row in rows]
                    pks = list(
                        OutboundMessage.objects.filter(idempotency_key__in=keys)
                        .order_by("pk")
                        .values_list("pk", flat=True)
                    )
                transaction.on_commit(lambda pks=pks: self._publish_sends(pks))

    def _row(self, index: int, contact_id: int, number: WhatsAppNumber, tag: str):
        message = builders.template_message(
            TEMPLATE_NAME, TEMPLATE_LANGUAGE, [str(100000 + index), "won", "12.50"]
        )
        return OutboundMessage(
            contact_id=contact_id,
            number=number,
            idempotency_key=f"backlog:{tag}:{index}",
            message_type=message["type"],
            payload=message,
            text=f"ticket_settled {100000 + index} won 12.50",
            priority=int(Priority.BULK),
        )

    def _publish_sends(self, pks: list[int]) -> None:
        # One producer for the batch: the same message the service publishes, without a
        # connection checkout per row.
        ignore_result = ignores_result(SEND_TASK)
        with app.producer_or_acquire() as producer:
            for pk in pks:
                app.send_task(
                    SEND_TASK,
                    args=[pk],
                    priority=int(Priority.BULK),
                    producer=producer,
                    ignore_result=ignore_result,
                )

    def enqueue_football(self, *, count: int, task_name: str) -> None:
        ignore_result = ignores_result(task_name)
        with app.producer_or_acquire() as producer:
            for index in range(count):
                # A plausible API-Football fixture id per task.
                app.send_task(
                    task_name,
                    args=[1_000_000 + index],
                    producer=producer,
                    ignore_result=ignore_result,
                )
