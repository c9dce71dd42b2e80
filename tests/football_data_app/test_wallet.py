"""Ledger services: the balance moves only with a ledger entry, never below zero, once a ticket."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from football_data_app.models import BetTicket, LedgerEntry, LedgerKind, Wallet
from football_data_app.services.wallet import (
    InsufficientFunds,
    WalletError,
    wallet_adjust,
    wallet_deposit,
    wallet_get_or_create,
    wallet_payout,
    wallet_reconcile,
    wallet_refund,
    wallet_stake,
    wallets_out_of_balance,
)
from tests.football_data_app.betting_factories import funded_wallet, new_contact

pytestmark = pytest.mark.django_db


def _ticket(wallet: Wallet, stake: str = "10.00") -> BetTicket:
    return BetTicket.objects.create(contact=wallet.contact, kind="single", stake=Decimal(stake))


def test_deposit_stake_payout_refund_adjust_keep_balance_equal_to_ledger():
    wallet = funded_wallet(amount="50.00")
    ticket = _ticket(wallet)
    wallet_stake(wallet=wallet, ticket=ticket, amount="10.00")
    wallet_payout(wallet=wallet, ticket=ticket, amount="25.50")
    other = _ticket(wallet)
    wallet_stake(wallet=wallet, ticket=other, amount="5")
    wallet_refund(wallet=wallet, ticket=other, amount="5")
    wallet_adjust(wallet=wallet, amount="-0.50", note="goodwill reversal")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("65.00")
    assert list(wallet.entries.order_by("pk").values_list("kind", "amount")) == [
        ("deposit", Decimal("50.00")),
        ("stake", Decimal("-10.00")),
        ("payout", Decimal("25.50")),
        ("stake", Decimal("-5.00")),
        ("refund", Decimal("5.00")),
        ("adjustment", Decimal("-0.50")),
    ]
    reconciliation = wallet_reconcile(wallet_id=wallet.pk)
    assert reconciliation.ok and reconciliation.ledger_sum == Decimal("65.00")
    assert wallets_out_of_balance() == []


def test_a_second_payout_for_a_ticket_is_refused_and_changes_nothing():
    wallet = funded_wallet(amount="10.00")
    ticket = _ticket(wallet)
    assert wallet_payout(wallet=wallet, ticket=ticket, amount="30")[1] == "created"
    entry, state = wallet_payout(wallet=wallet, ticket=ticket, amount="30")
    assert (entry, state) == (None, "already")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("40.00")
    assert LedgerEntry.objects.filter(ticket=ticket, kind=LedgerKind.PAYOUT).count() == 1


def test_the_database_refuses_a_second_entry_of_a_kind_for_a_ticket():
    wallet = funded_wallet()
    ticket = _ticket(wallet)
    LedgerEntry.objects.create(wallet=wallet, kind="payout", amount=Decimal("1"), ticket=ticket)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(wallet=wallet, kind="payout", amount=Decimal("1"), ticket=ticket)


def test_stake_above_the_balance_is_refused_and_writes_nothing():
    wallet = funded_wallet(amount="5.00")
    ticket = _ticket(wallet)
    with pytest.raises(InsufficientFunds):
        wallet_stake(wallet=wallet, ticket=ticket, amount="5.01")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("5.00")
    assert wallet.entries.count() == 1


def test_negative_adjustment_below_zero_is_refused():
    wallet = funded_wallet(amount="1.00")
    with pytest.raises(InsufficientFunds):
        wallet_adjust(wallet=wallet, amount="-1.01", note="oops")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("1.00")


@pytest.mark.parametrize("amount", ["0", "-1", "1.001", "abc", "NaN", "Infinity"])
def test_bad_amounts_are_refused(amount):
    wallet = funded_wallet(amount="0")
    with pytest.raises(WalletError):
        wallet_deposit(wallet=wallet, amount=amount)
    assert wallet.entries.count() == 0


def test_adjustment_needs_a_note():
    wallet = funded_wallet()
    with pytest.raises(WalletError):
        wallet_adjust(wallet=wallet, amount="1", note=" ")


def test_the_balance_check_constraint_holds_at_the_database():
    wallet = funded_wallet(amount="0")
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("-1"))


def test_reconcile_spots_a_balance_changed_outside_the_ledger():
    wallet = funded_wallet(amount="10.00")
    Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("12.00"))
    reconciliation = wallet_reconcile(wallet_id=wallet.pk)
    assert not reconciliation.ok
    assert (reconciliation.balance, reconciliation.ledger_sum) == (Decimal("12"), Decimal("10"))
    assert [r.wallet_id for r in wallets_out_of_balance()] == [wallet.pk]


def test_sandbox_welcome_deposit_only_once(settings):
    settings.SANDBOX = True
    settings.FOOTBALL_SANDBOX_WELCOME_DEPOSIT = "100.00"
    contact = new_contact()
    wallet = wallet_get_or_create(contact=contact)
    assert wallet.balance == Decimal("100.00")
    assert wallet_get_or_create(contact=contact).balance == Decimal("100.00")
    assert wallet.entries.get().kind == LedgerKind.DEPOSIT


def test_no_welcome_deposit_outside_the_sandbox(settings):
    settings.SANDBOX = False
    wallet = wallet_get_or_create(contact=new_contact())
    assert wallet.balance == Decimal("0.00")
    assert wallet.entries.count() == 0
