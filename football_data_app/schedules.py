"""Beat schedules of the football app (installed by `manage.py install_schedules`).

Intervals come from settings (shorter in SANDBOX mode, so `make run` shows fixtures finishing
and tickets settling within minutes); every task here is guarded by `single_run`.
"""

from __future__ import annotations

from django.conf import settings

SCHEDULES = [
    {
        "name": "football: full update (leagues, fixtures, odds)",
        "task": "run_apifootball_full_update_task",
        "every_seconds": settings.APIFOOTBALL_FULL_UPDATE_SECONDS,
        "description": "Leagues, then fixtures per active league, then odds per upcoming fixture.",
    },
    {
        "name": "football: scores and settlement",
        "task": "run_score_and_settlement_task",
        "every_seconds": settings.APIFOOTBALL_SCORES_SECONDS,
        "description": "Live and due scores per active league; settles final and void fixtures.",
    },
    {
        "name": "football: reconcile and settle pending items",
        "task": "reconcile_and_settle_pending_items_task",
        "every_seconds": settings.FOOTBALL_RECONCILE_SECONDS,
        "description": "Settles whatever a lost or failed settlement task left behind.",
    },
]
