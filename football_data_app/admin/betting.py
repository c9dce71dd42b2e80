"""Admin for tickets, legs and wallets with their ledger (staff only).

Nothing here writes money directly: tickets and the ledger are read-only, and the actions call
the settlement services (void a fixture, settle now). Each wallet's balance is shown next to
its ledger sum, and a wallet whose two differ is flagged.

`FIXTURE_ACTIONS` are added to the fixture admin (admin/catalogue.py) by name.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest

from football_data_app.models import BetLeg, BetTicket, Fixture, LedgerEntry, Wallet
from football_data_app.services import settlement as service


def _void_and_settle(fixture_ids: list[int]) -> tuple[int, int]:
    legs = settled = 0
    for fixture_id in fixture_ids:
        legs += service.fixture_void(fixture_id=fixture_id)
        settled += service.fixture_settle_tickets(fixture_id=fixture_id)["settled"]
    return legs, settled


@admin.action(description="Void fixture: void its open legs and settle their tickets")
def void_fixtures(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Fixture]) -> None:
    legs, settled = _void_and_settle(list(queryset.values_list("pk", flat=True)))
    modeladmin.message_user(
        request, f"{legs} leg(s) voided, {settled} ticket(s) settled.", messages.SUCCESS
    )


@admin.action(description="Settle now (outcomes, legs, tickets) if the fixture is final")
def settle_fixtures_now(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Fixture]) -> None:
    waiting, settled = [], 0
    for fixture_id in queryset.values_list("pk", flat=True):
        outcome = service.fixture_settle_outcomes(fixture_id=fixture_id)
        service.fixture_settle_legs(fixture_id=fixture_id)
        if outcome["action"] == "wait":
            waiting.append(f"{fixture_id}: {outcome['reason']}")
            continue
        settled += service.fixture_settle_tickets(fixture_id=fixture_id)["settled"]
    modeladmin.message_user(request, f"{settled} ticket(s) settled.", messages.SUCCESS)
    if waiting:
        modeladmin.message_user(request, "Waiting: " + "; ".join(waiting), messages.WARNING)


FIXTURE_ACTIONS = (void_fixtures, settle_fixtures_now)


class FixtureFilter(admin.SimpleListFilter):
    """Tickets with a leg on one fixture (?fixture=<id>); offers fixtures with open legs."""

    title = "fixture"
    parameter_name = "fixture"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        fixtures = (
            Fixture.objects.filter(legs__result="")
            .select_related("home_team", "away_team")
            .distinct()
            .order_by("-kickoff")[:20]
        )
        return [(str(f.pk), str(f)) for f in fixtures]

    def queryset(self, request: HttpRequest, queryset: QuerySet[BetTicket]) -> QuerySet[BetTicket]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(legs__fixture_id=int(value))
        return queryset


class BetLegInline(admin.TabularInline):
    model = BetLeg
    extra = 0
    can_delete = False
    raw_id_fields = ("outcome", "fixture")
    fields = readonly_fields = (
        "fixture",
        "bet_type_name",
        "label",
        "line",
        "odds",
        "result",
        "waiting_reason",
        "settled_at",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BetTicket)
class BetTicketAdmin(admin.ModelAdmin):
    list_display = ("id", "contact", "kind", "status", "stake", "payout", "placed_at", "settled_at")
    list_filter = ("status", "kind", FixtureFilter)
    search_fields = ("=id", "=contact__wa_id")
    list_select_related = ("contact",)
    raw_id_fields = ("contact",)
    show_full_result_count = False
    date_hierarchy = "placed_at"
    inlines = (BetLegInline,)
    actions = ("void_filtered_fixture", "settle_selected")
    readonly_fields = (
        "contact",
        "kind",
        "stake",
        "status",
        "payout",
        "placed_at",
        "settled_at",
        "notified_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers place tickets through the services, never the admin

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the ledger refers to tickets

    @admin.action(description="Void the fixture this list is filtered by (its open legs)")
    def void_filtered_fixture(self, request: HttpRequest, queryset: QuerySet[BetTicket]) -> None:
        value = request.GET.get(FixtureFilter.parameter_name, "")
        if not value.isdigit():
            fixtures = set(
                BetLeg.objects.filter(ticket__in=queryset).values_list("fixture_id", flat=True)
            )
            if len(fixtures) != 1:
                self.message_user(
                    request,
                    "Filter the list by one fixture first (or select tickets on one fixture).",
                    messages.ERROR,
                )
                return
            value = str(fixtures.pop())
        legs, settled = _void_and_settle([int(value)])
        self.message_user(
            request,
            f"Fixture {value}: {legs} leg(s) voided, {settled} ticket(s) settled.",
            messages.SUCCESS,
        )

    @admin.action(description="Settle the selected tickets if their legs decide them")
    def settle_selected(self, request: HttpRequest, queryset: QuerySet[BetTicket]) -> None:
        totals = service.tickets_settle(ticket_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{totals['settled']} ticket(s) settled.", messages.SUCCESS)


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "kind", "amount", "ticket", "note")
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ("contact", "balance", "ledger_sum", "reconciled", "currency", "updated_at")
    search_fields = ("=contact__wa_id", "contact__profile_name")
    list_select_related = ("contact",)
    raw_id_fields = ("contact",)
    show_full_result_count = False
    readonly_fields = ("contact", "balance", "ledger_sum", "reconciled", "currency", "updated_at")
    inlines = (LedgerEntryInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Wallet]:
        return super().get_queryset(request).annotate(_ledger_sum=Sum("entries__amount"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # wallets are created by the services (and the sandbox demo)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Ledger sum")
    def ledger_sum(self, wallet: Wallet) -> Any:
        return getattr(wallet, "_ledger_sum", None) or 0

    @admin.display(description="Balance = ledger", boolean=True)
    def reconciled(self, wallet: Wallet) -> bool:
        return wallet.balance == (getattr(wallet, "_ledger_sum", None) or 0)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "wallet", "kind", "amount", "ticket", "note")
    list_filter = ("kind",)
    search_fields = ("=wallet__contact__wa_id", "=ticket__id")
    list_select_related = ("wallet__contact",)
    raw_id_fields = ("wallet", "ticket")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
