"""Beat schedules of the WhatsApp channel (installed by `manage.py install_schedules`)."""

from __future__ import annotations

SCHEDULES = [
    {
        "name": "meta: sweep stranded messages",
        "task": "sweep_stranded_messages_task",
        "every_seconds": 30,
        "description": "Re-enqueue unprocessed inbound and queued/stuck outbound messages.",
    },
    {
        "name": "meta: purge old webhook events",
        "task": "purge_webhook_events_task",
        "every_seconds": 3600,
        "description": "Delete raw webhook events older than META_WEBHOOK_EVENT_RETENTION_DAYS.",
    },
    {
        "name": "meta: sync message templates",
        "task": "sync_message_templates_task",
        "every_seconds": 3600,
        "description": "Fetch every WABA's template catalogue from the Graph API.",
    },
]
