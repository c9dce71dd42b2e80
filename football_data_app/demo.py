"""Demo data of the football app (called by `manage.py bootstrap_demo` in `make run`).

The leagues of the sandbox are catalogued and activated at once, and a full update is
published, so fixtures and odds show in the admin within a minute of `make run`. Betting demo
data (football_data_app.demo_betting, when present) follows.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from django.conf import settings
from django.utils import timezone

from football_data_app.apifootball import ApiFootballError
from football_data_app.models import League
from football_data_app.parsing import LeagueData
from football_data_app.sandbox.world import LEAGUES as SANDBOX_LEAGUES
from football_data_app.services.ingestion import refresh_leagues, upsert_leagues
from whatsappcrm_backend.publishing import publish_on_commit

logger = logging.getLogger(__name__)


def load_demo() -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if not settings.SANDBOX:
        summary["leagues"] = "not in SANDBOX mode: activate leagues in the admin"
    else:
        try:
            summary["catalogue"] = refresh_leagues()
        except ApiFootballError as exc:
            # The sandbox may still be starting: the scheduled full update catalogues them.
            logger.warning("demo: leagues not fetched yet: %s", exc)
            summary["catalogue"] = {"error": exc.kind}
        except Exception as exc:  # noqa: BLE001 - sandbox not up yet; never block bootstrap
            logger.warning("demo: API-Football sandbox not reachable: %s", exc)
            summary["catalogue"] = {"error": "unreachable"}
        if not settings.APIFOOTBALL_SANDBOX_SCENARIO:
            # bootstrap_demo runs before `run_sandboxes` starts: the generated world's leagues
            # are known without asking it (same list, same season).
            season = timezone.now().year
            upsert_leagues(
                leagues=[
                    LeagueData(api_id=api_id, season=season, name=name, country=country)
                    for api_id, name, country, _cup in SANDBOX_LEAGUES
                ]
            )
        summary["activated"] = League.objects.filter(active=False).update(active=True)
        publish_on_commit("run_apifootball_full_update_task")
        summary["full_update"] = "published"
    try:
        betting = import_module("football_data_app.demo_betting")
    except ModuleNotFoundError:
        return summary
    summary.update(betting.load_demo())
    return summary
