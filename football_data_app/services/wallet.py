"""Wallet ledger services: the only code that changes a balance.

Every change is one LedgerEntry insert plus one atomic `F()` update of the wallet row, in the
same transaction, so `balance == sum(ledger)` always holds. The database guards the two things
that must never happen: a negative balance (CheckConstraint) and a ticket's stake, payout or
refund entering the ledger twice (unique (ticket, kind)); a second payout returns "already".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from football_data_app.models import BetTicket, LedgerEntry, LedgerKind, Wallet
from meta_integration.models import Contact

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")


class WalletError(ValueError):
    """A ledger change that was refused; nothing was written."""


class InsufficientFunds(WalletError):
    pass


def _money(amount: Decimal | str | int) -> Decimal:
    try:
        value = Decimal(str(amount))
    except ArithmeticError as exc:  # InvalidOperation: not a number
        raise WalletError(f"{amount!r} is not an amount") from exc
    if not value.is_finite():
        raise WalletError(f"{amount!r} is not an amount")
    if value != value.quantize(CENT):
        raise WalletError(f"{amount} has more than two decimal places")
    return value.quantize(CENT)


def _positive(amount: Decimal | str | int) -> Decimal:
    value = _money(amount)
    if value <= 0:
        raise WalletError("the amount must be greater than zero")
    return value


@transaction.atomic
def wallet_get_or_create(*, contact: Contact) -> Wallet:
    """The contact's wallet; in the sandbox a new wallet gets the welcome deposit once."""
    wallet, created = Wallet.objects.get_or_create(contact=contact)
    if created and settings.SANDBOX:
        welcome = _money(settings.FOOTBALL_SANDBOX_WELCOME_DEPOSIT)
        if welcome > 0:
            wallet_deposit(wallet=wallet, amount=welcome, note="sandbox welcome deposit")
            wallet.refresh_from_db(fields=["balance"])
    return wallet


def _apply(
    *,
    wallet: Wallet,
    kind: str,
    amount: Decimal,
    ticket: BetTicket | None = None,
    note: str = "",
) -> tuple[LedgerEntry | None, str]:
    """Insert the entry and move the balance atomically; ("already") if the ticket has it."""
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                wallet=wallet, kind=kind, amount=amount, ticket=ticket, note=note[:200]
            )
            # Conditional F() update: the database refuses to go below zero, under its row lock.
            updated = Wallet.objects.filter(pk=wallet.pk, balance__gte=-amount).update(
                balance=F("balance") + amount
            )
            if not updated:
                raise InsufficientFunds(f"balance of wallet {wallet.pk} is below {-amount}")
    except IntegrityError:
        if ticket is None:
            raise
        # The (ticket, kind) entry exists: a redelivered task or a second worker got there.
        logger.info("ledger %s for ticket %s already written", kind, ticket.pk)
        return None, "already"
    return entry, "created"


@transaction.atomic
def wallet_deposit(*, wallet: Wallet, amount: Decimal | str, note: str = "") -> LedgerEntry:
    entry, _ = _apply(wallet=wallet, kind=LedgerKind.DEPOSIT, amount=_positive(amount), note=note)
    assert entry is not None
    return entry


@transaction.atomic
def wallet_stake(*, wallet: Wallet, ticket: BetTicket, amount: Decimal | str) -> LedgerEntry:
    """Debit a ticket's stake (raises InsufficientFunds; at most once per ticket)."""
    entry, _ = _apply(
        wallet=wallet, kind=LedgerKind.STAKE, amount=-_positive(amount), ticket=ticket
    )
    if entry is None:
        raise WalletError(f"the stake of ticket {ticket.pk} is already in the ledger")
    return entry


@transaction.atomic
def wallet_payout(
    *, wallet: Wallet, ticket: BetTicket, amount: Decimal | str
) -> tuple[LedgerEntry | None, str]:
    """Credit a ticket's winnings: ("created") once, ("already") ever after."""
    return _apply(wallet=wallet, kind=LedgerKind.PAYOUT, amount=_positive(amount), ticket=ticket)


@transaction.atomic
def wallet_refund(
    *, wallet: Wallet, ticket: BetTicket, amount: Decimal | str
) -> tuple[LedgerEntry | None, str]:
    """Give back a void ticket's stake: ("created") once, ("already") ever after."""
    return _apply(wallet=wallet, kind=LedgerKind.REFUND, amount=_positive(amount), ticket=ticket)


@transaction.atomic
def wallet_adjust(*, wallet: Wallet, amount: Decimal | str, note: str) -> LedgerEntry:
    """An operator's correction (signed); a note is required, the balance stays >= 0."""
    value = _money(amount)
    if value == 0:
        raise WalletError("an adjustment of zero changes nothing")
    if not note.strip():
        raise WalletError("an adjustment needs a note saying why")
    entry, _ = _apply(wallet=wallet, kind=LedgerKind.ADJUSTMENT, amount=value, note=note)
    assert entry is not None
    return entry


# --- selectors ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reconciliation:
    wallet_id: int
    balance: Decimal
    ledger_sum: Decimal

    @property
    def ok(self) -> bool:
        return self.balance == self.ledger_sum


def wallet_reconcile(*, wallet_id: int) -> Reconciliation:
    """The balance against the ledger sum (they differ only if something bypassed the ledger)."""
    balance = Wallet.objects.values_list("balance", flat=True).get(pk=wallet_id)
    total = LedgerEntry.objects.filter(wallet_id=wallet_id).aggregate(s=Sum("amount"))["s"]
    return Reconciliation(wallet_id, balance, (total or Decimal("0")).quantize(CENT))


def wallets_out_of_balance() -> list[Reconciliation]:
    """Every wallet whose balance differs from its ledger sum (one query)."""
    rows = Wallet.objects.annotate(ledger_sum=Sum("entries__amount")).values_list(
        "pk", "balance", "ledger_sum"
    )
    out = []
    for pk, balance, ledger_sum in rows:
        total = (ledger_sum or Decimal("0")).quantize(CENT)
        if balance != total:
            out.append(Reconciliation(pk, balance, total))
    return out
