"""Admin for leagues, fixtures, markets, outcomes, bet types, bookmakers and API calls.

Fixtures and outcomes grow without bound: lists never count the whole table, select related
rows in the same query and use raw-id widgets. The catalogue is written by ingestion; the
admin edits only what an operator decides (which leagues are active). Extra fixture actions
(e.g. "void fixture") come from admin/betting.py as `FIXTURE_ACTIONS`, when it defines them.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from football_data_app.admin import betting
from football_data_app.models import (
    ApiCallLog,
    BetType,
    Bookmaker,
    Fixture,
    League,
    Market,
    Outcome,
)
from whatsappcrm_backend.publishing import publish_on_commit


@admin.register(League)
class LeagueAdmin(admin.ModelAdmin):
    list_display = ("name", "season", "country", "api_id", "active", "last_synced_at")
    list_filter = ("active", "season", "country")
    search_fields = ("name", "country", "=api_id")
    readonly_fields = ("last_synced_at",)
    actions = ("activate", "deactivate", "refresh_now")

    @admin.action(description="Activate (ingest fixtures, odds and scores)")
    def activate(self, request: HttpRequest, queryset: QuerySet[League]) -> None:
        count = queryset.update(active=True)
        self.message_user(request, f"{count} league(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[League]) -> None:
        count = queryset.update(active=False)
        self.message_user(request, f"{count} league(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Fetch fixtures now (then their odds)")
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[League]) -> None:
        for league_id in queryset.values_list("pk", flat=True):
            publish_on_commit("fetch_events_for_league_task", league_id)
        self.message_user(request, "Fixture refresh queued.", messages.SUCCESS)


class MarketInline(admin.TabularInline):
    model = Market
    extra = 0
    fields = ("bet_type", "bookmaker", "updated_at", "outcomes_summary")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Market]:
        return (
            super()
            .get_queryset(request)
            .select_related("bet_type", "bookmaker")
            .prefetch_related("outcomes")
        )

    @admin.display(description="Outcomes")
    def outcomes_summary(self, market: Market) -> str:
        return ", ".join(
            f"{o.label} {o.odds}{'' if o.active else ' (inactive)'}"
            + (f" [{o.result}]" if o.result else "")
            for o in market.outcomes.all()
        )

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Fixture)
class FixtureAdmin(admin.ModelAdmin):
    list_display = (
        "api_id",
        "__str__",
        "league",
        "kickoff",
        "status",
        "score",
        "outcomes_settled_at",
        "last_synced_at",
    )
    list_filter = ("status", "league")
    search_fields = ("=api_id", "home_team__name", "away_team__name")
    list_select_related = ("league", "home_team", "away_team")
    raw_id_fields = ("league", "home_team", "away_team")
    show_full_result_count = False
    date_hierarchy = "kickoff"
    inlines = (MarketInline,)
    actions = tuple(getattr(betting, "FIXTURE_ACTIONS", ()))
    readonly_fields = ("last_synced_at", "postponed_at", "outcomes_settled_at")

    @admin.display(description="Score")
    def score(self, fixture: Fixture) -> str:
        if fixture.goals_home is None:
            return "-"
        text = f"{fixture.goals_home}-{fixture.goals_away}"
        if fixture.fulltime_home is not None:
            text += f" (FT {fixture.fulltime_home}-{fixture.fulltime_away})"
        if fixture.penalty_home is not None:
            text += f" (pen {fixture.penalty_home}-{fixture.penalty_away})"
        return text


class OutcomeInline(admin.TabularInline):
    model = Outcome
    extra = 0
    fields = ("label", "line", "odds", "active", "result", "updated_at")
    readonly_fields = ("updated_at",)
    can_delete = False  # legs reference outcomes (PROTECT); withdraw with `active`


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = ("id", "fixture", "bet_type", "bookmaker", "updated_at")
    list_filter = ("bet_type", "bookmaker")
    search_fields = ("=fixture__api_id", "fixture__home_team__name", "fixture__away_team__name")
    list_select_related = ("fixture__home_team", "fixture__away_team", "bet_type", "bookmaker")
    raw_id_fields = ("fixture",)
    show_full_result_count = False
    inlines = (OutcomeInline,)


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    list_display = ("id", "label", "odds", "active", "result", "market", "fixture", "updated_at")
    list_filter = ("active", "result", "market__bet_type")
    search_fields = ("=market__fixture__api_id", "label")
    list_select_related = (
        "market__bet_type",
        "market__bookmaker",
        "market__fixture__home_team",
        "market__fixture__away_team",
    )
    raw_id_fields = ("market",)
    show_full_result_count = False

    @admin.display(description="Fixture")
    def fixture(self, outcome: Outcome) -> str:
        return str(outcome.market.fixture)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(BetType)
class BetTypeAdmin(admin.ModelAdmin):
    list_display = ("api_id", "name")
    search_fields = ("name", "=api_id")


@admin.register(Bookmaker)
class BookmakerAdmin(admin.ModelAdmin):
    list_display = ("api_id", "name")
    search_fields = ("name", "=api_id")


@admin.register(ApiCallLog)
class ApiCallLogAdmin(admin.ModelAdmin):
    """Read-only: the last API errors (one row each) and the quota of the last calls."""

    list_display = (
        "created_at",
        "endpoint",
        "error_kind",
        "short_error",
        "http_status",
        "requests_remaining",
        "minute_remaining",
    )
    list_filter = ("error_kind", "endpoint")
    search_fields = ("error_message", "endpoint")
    show_full_result_count = False

    @admin.display(description="Error")
    def short_error(self, call: ApiCallLog) -> str:
        return call.error_message[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
