"""Football data (API-Football v3) and bet tickets with their wallet ledger.

Catalogue rows (League ... Outcome) are upserted in bulk by ingestion and keyed by the API's
ids. Betting rows never follow the catalogue: a placed leg keeps the odds and line agreed at
placement, and an outcome referenced by a leg cannot be deleted (PROTECT).

Money is Decimal throughout. A wallet's balance changes only through the ledger services
(football_data_app/services/wallet.py), so it always equals the sum of its ledger entries.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from meta_integration.models import Contact

MONEY = {"max_digits": 14, "decimal_places": 2}
ODDS = {"max_digits": 9, "decimal_places": 3}


# --- catalogue --------------------------------------------------------------------------------
class League(models.Model):
    api_id = models.PositiveIntegerField()
    season = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=100, blank=True)
    logo_url = models.URLField(max_length=500, blank=True)
    active = models.BooleanField(
        default=False, help_text="Only active leagues are ingested (fixtures, odds, scores)."
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_id", "season"], name="football_league_season")
        ]
        ordering = ["name", "-season"]

    def __str__(self) -> str:
        return f"{self.name} {self.season}"


class Team(models.Model):
    api_id = models.PositiveIntegerField(unique=True)
    name = models.CharField(max_length=200)
    logo_url = models.URLField(max_length=500, blank=True)

    def __str__(self) -> str:
        return self.name


class FixtureStatus:
    """API-Football `status.short` codes, grouped the way settlement reads them."""

    SCHEDULED = frozenset({"TBD", "NS"})
    LIVE = frozenset({"1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE"})
    FINISHED = frozenset({"FT", "AET", "PEN"})
    VOID = frozenset({"CANC", "ABD", "AWD", "WO"})
    POSTPONED = "PST"


class Fixture(models.Model):
    api_id = models.PositiveIntegerField(unique=True)
    league = models.ForeignKey(League, on_delete=models.CASCADE, related_name="fixtures")
    home_team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="+")
    away_team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="+")
    kickoff = models.DateTimeField(help_text="UTC.")
    round = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=8, default="NS", help_text="API-Football status.short")
    elapsed = models.PositiveSmallIntegerField(null=True, blank=True)
    # `goals` includes extra time and excludes the shoot-out; `score.fulltime` is the score at
    # the end of regulation, which is what 90-minute markets settle on.
    goals_home = models.PositiveSmallIntegerField(null=True, blank=True)
    goals_away = models.PositiveSmallIntegerField(null=True, blank=True)
    halftime_home = models.PositiveSmallIntegerField(null=True, blank=True)
    halftime_away = models.PositiveSmallIntegerField(null=True, blank=True)
    fulltime_home = models.PositiveSmallIntegerField(null=True, blank=True)
    fulltime_away = models.PositiveSmallIntegerField(null=True, blank=True)
    extratime_home = models.PositiveSmallIntegerField(null=True, blank=True)
    extratime_away = models.PositiveSmallIntegerField(null=True, blank=True)
    penalty_home = models.PositiveSmallIntegerField(null=True, blank=True)
    penalty_away = models.PositiveSmallIntegerField(null=True, blank=True)
    # When the fixture was first seen as postponed (PST voids after a configurable delay).
    postponed_at = models.DateTimeField(null=True, blank=True)
    # Set once every outcome of the fixture has its result; tickets settle after it.
    outcomes_settled_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "kickoff"], name="football_fixture_status"),
            models.Index(fields=["league", "kickoff"], name="football_fixture_league"),
        ]
        ordering = ["kickoff"]

    def __str__(self) -> str:
        return f"{self.home_team} v {self.away_team} ({self.kickoff:%Y-%m-%d %H:%M})"


class Bookmaker(models.Model):
    api_id = models.PositiveIntegerField(unique=True)
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name


class BetType(models.Model):
    """The `/odds/bets` catalogue (ids vary between clients, so it is loaded, not assumed)."""

    api_id = models.PositiveIntegerField(unique=True)
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name


class Market(models.Model):
    fixture = models.ForeignKey(Fixture, on_delete=models.CASCADE, related_name="markets")
    bookmaker = models.ForeignKey(Bookmaker, on_delete=models.CASCADE, related_name="+")
    bet_type = models.ForeignKey(BetType, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(null=True, blank=True, help_text="The odds' `update`.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["fixture", "bookmaker", "bet_type"], name="football_market_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bet_type} @ {self.bookmaker}"


class LegResult(models.TextChoices):
    WON = "won"
    LOST = "lost"
    VOID = "void"
    PUSH = "push"
    HALF_WON = "half_won"
    HALF_LOST = "half_lost"


class Outcome(models.Model):
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="outcomes")
    label = models.CharField(max_length=100, help_text='As API-Football gives it: "Over 2.5".')
    line = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    odds = models.DecimalField(**ODDS)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The outcome's own result once the fixture is final (null: not settled yet).
    result = models.CharField(max_length=16, choices=LegResult.choices, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "label"], name="football_outcome_unique")
        ]

    def __str__(self) -> str:
        return f"{self.label} @ {self.odds}"


class ApiCallLog(models.Model):
    """The last API-Football calls that failed, and the quota the last call reported."""

    endpoint = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, blank=True, help_text="rateLimit, requests, …")
    error_message = models.TextField(blank=True)
    requests_remaining = models.IntegerField(null=True, blank=True, help_text="Daily quota left.")
    minute_remaining = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API-Football call"

    def __str__(self) -> str:
        return f"{self.endpoint} {self.error_kind or 'ok'}"


# --- wallet and ledger -----------------------------------------------------------------------
class Wallet(models.Model):
    contact = models.OneToOneField(Contact, on_delete=models.CASCADE, related_name="wallet")
    balance = models.DecimalField(**MONEY, default=Decimal("0.00"))
    currency = models.CharField(max_length=3, default="USD")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0), name="football_wallet_balance_not_negative"
            )
        ]

    def __str__(self) -> str:
        return f"wallet of {self.contact_id}: {self.balance} {self.currency}"


class LedgerKind(models.TextChoices):
    DEPOSIT = "deposit"
    STAKE = "stake"
    PAYOUT = "payout"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class LedgerEntry(models.Model):
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    amount = models.DecimalField(**MONEY, help_text="Signed: a stake is negative.")
    ticket = models.ForeignKey(
        "BetTicket", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A ticket's stake, payout or refund enters the ledger once, whatever runs twice.
            models.UniqueConstraint(
                fields=["ticket", "kind"],
                condition=Q(ticket__isnull=False),
                name="football_ledger_once_per_ticket_kind",
            )
        ]
        indexes = [models.Index(fields=["wallet", "created_at"], name="football_ledger_wallet")]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


# --- tickets ---------------------------------------------------------------------------------
class TicketKind(models.TextChoices):
    SINGLE = "single"
    ACCUMULATOR = "accumulator"


class TicketStatus(models.TextChoices):
    PLACED = "placed"
    WON = "won"
    LOST = "lost"
    VOID = "void"
    PARTIALLY_SETTLED = "partially_settled"


class BetTicket(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="bet_tickets")
    kind = models.CharField(max_length=16, choices=TicketKind.choices)
    stake = models.DecimalField(**MONEY)
    status = models.CharField(
        max_length=20, choices=TicketStatus.choices, default=TicketStatus.PLACED
    )
    payout = models.DecimalField(**MONEY, null=True, blank=True)
    placed_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # Set when the settlement notification's outbound row was created (sent at most once).
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "placed_at"], name="football_ticket_status"),
            models.Index(fields=["contact", "placed_at"], name="football_ticket_contact"),
        ]

    def __str__(self) -> str:
        return f"ticket {self.pk} ({self.kind}, {self.status})"


class BetLeg(models.Model):
    ticket = models.ForeignKey(BetTicket, on_delete=models.CASCADE, related_name="legs")
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="legs")
    # Denormalised for batch settlement by fixture and for the accumulator rule.
    fixture = models.ForeignKey(Fixture, on_delete=models.PROTECT, related_name="legs")
    odds = models.DecimalField(**ODDS, help_text="Agreed at placement; never follows a refresh.")
    line = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    label = models.CharField(max_length=100, help_text="The outcome's label at placement.")
    bet_type_name = models.CharField(max_length=200)
    result = models.CharField(max_length=16, choices=LegResult.choices, blank=True)
    # Why the leg has no result yet (e.g. "fulltime score missing"), shown in the admin.
    waiting_reason = models.CharField(max_length=200, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One leg per fixture in a ticket (correlated legs are not an accumulator).
            models.UniqueConstraint(
                fields=["ticket", "fixture"], name="football_leg_one_per_fixture"
            )
        ]
        indexes = [models.Index(fields=["fixture", "result"], name="football_leg_fixture")]

    def __str__(self) -> str:
        return f"{self.label} @ {self.odds} [{self.result or 'open'}]"
