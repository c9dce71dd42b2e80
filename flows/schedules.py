"""Beat schedules of the flows app (installed by `manage.py install_schedules`)."""

from __future__ import annotations

SCHEDULES = [
    {
        "name": "flows: expire idle conversations",
        "task": "cleanup_idle_conversations_task",
        "every_seconds": 30,
        "description": "Expire sessions idle past their timeout and send the timeout message.",
    },
    {
        "name": "flows: prune ended sessions",
        "task": "prune_ended_sessions_task",
        "every_seconds": 24 * 3600,
        "description": "Delete sessions ended more than FLOWS_SESSION_RETENTION_DAYS ago.",
    },
    {
        "name": "flows: flag unanswered hand-overs",
        "task": "flag_unanswered_handovers_task",
        "every_seconds": 60,
        "description": "Flag hand-overs nobody answered within FLOWS_HANDOVER_ALERT_SECONDS.",
    },
]
