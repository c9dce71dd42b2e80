"""Catalogue admin: staff only, pages load with data in a bounded number of queries, league
actions, API errors and quota read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from football_data_app.models import ApiCallLog, League
from tests.football_data_app.factories import make_1x2, make_fixture, make_league, make_market

pytestmark = pytest.mark.django_db

CHANGELISTS = ["league", "fixture", "market", "outcome", "bettype", "bookmaker", "apicalllog"]


def url(model: str, view: str = "changelist", *args: object) -> str:
    return reverse(f"admin:football_data_app_{model}_{view}", args=args)


@pytest.fixture
def catalogue():
    league = make_league(name="Premier League")
    fixtures = [make_fixture(league=league) for _ in range(5)]
    for fixture in fixtures:
        make_1x2(fixture)
        make_market(fixture, "Goals Over/Under", {"Over 2.5": "1.9", "Under 2.5": "1.9"})
    ApiCallLog.objects.create(endpoint="/fixtures", error_kind="plan", error_message="no plan")
    ApiCallLog.objects.create(endpoint="/odds", requests_remaining=7000, minute_remaining=299)
    return {"league": league, "fixtures": fixtures}


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelists_are_staff_only(client, model):
    assert client.get(url(model)).status_code == 302


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelists_load_with_data(admin_client, catalogue, model):
    response = admin_client.get(url(model))
    assert response.status_code == 200


def test_fixture_list_queries_do_not_grow_with_rows(admin_client, catalogue):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        admin_client.get(url("fixture"))
    for _ in range(10):
        make_1x2(make_fixture(league=catalogue["league"]))
    with CaptureQueriesContext(connection) as more:
        admin_client.get(url("fixture"))
    assert len(more) == len(few)


def test_fixture_page_shows_markets_and_outcomes_inline(admin_client, catalogue):
    fixture = catalogue["fixtures"][0]
    page = admin_client.get(url("fixture", "change", fixture.pk)).content.decode()
    assert "Match Winner" in page
    assert "Home 2.100" in page and "Over 2.5 1.900" in page


def test_league_actions_activate_and_deactivate(admin_client):
    leagues = [make_league(active=False), make_league(active=False)]
    ids = [str(x.pk) for x in leagues]
    admin_client.post(url("league"), {"action": "activate", "_selected_action": ids})
    assert League.objects.filter(active=True).count() == 2
    admin_client.post(url("league"), {"action": "deactivate", "_selected_action": ids[:1]})
    assert list(League.objects.filter(active=False)) == leagues[:1]


def test_api_calls_show_errors_and_quota_read_only(admin_client, catalogue):
    page = admin_client.get(url("apicalllog")).content.decode()
    assert "no plan" in page and "7000" in page
    error = ApiCallLog.objects.get(error_kind="plan")
    assert admin_client.post(url("apicalllog", "change", error.pk), {}).status_code == 403
    assert admin_client.get(url("apicalllog", "add")).status_code == 403
