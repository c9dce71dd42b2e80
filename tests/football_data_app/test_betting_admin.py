"""The betting admin: pages load for staff, the void action settles, the ledger is read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from football_data_app.models import BetTicket, LedgerEntry, Wallet
from tests.football_data_app.betting_factories import fixture_with_markets, funded_wallet, place

pytestmark = pytest.mark.django_db


def test_pages_load_and_show_the_reconciled_balance(admin_client):
    fixture, ids = fixture_with_markets()
    wallet = funded_wallet(amount="20.00")
    ticket = place(wallet.contact, [ids["Home"]], "5")
    for url in (
        reverse("admin:football_data_app_betticket_changelist"),
        reverse("admin:football_data_app_betticket_changelist") + f"?fixture={fixture.pk}",
        reverse("admin:football_data_app_betticket_change", args=[ticket.pk]),
        reverse("admin:football_data_app_wallet_changelist"),
        reverse("admin:football_data_app_wallet_change", args=[wallet.pk]),
        reverse("admin:football_data_app_ledgerentry_changelist"),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    page = admin_client.get(reverse("admin:football_data_app_wallet_changelist")).content.decode()
    assert "15.00" in page and 'alt="True"' in page
    Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("99.00"))
    page = admin_client.get(reverse("admin:football_data_app_wallet_changelist")).content.decode()
    assert 'alt="False"' in page


def test_void_fixture_action_refunds_the_tickets(admin_client):
    fixture, ids = fixture_with_markets()
    wallet = funded_wallet(amount="20.00")
    ticket = place(wallet.contact, [ids["Home"]], "5")
    url = reverse("admin:football_data_app_betticket_changelist") + f"?fixture={fixture.pk}"
    response = admin_client.post(
        url, {"action": "void_filtered_fixture", "_selected_action": [ticket.pk]}, follow=True
    )
    assert "1 leg(s) voided, 1 ticket(s) settled" in response.content.decode()
    ticket.refresh_from_db()
    assert (ticket.status, ticket.payout) == ("void", Decimal("5.00"))
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("20.00")


def test_ledger_and_tickets_cannot_be_added_or_deleted(admin_client):
    assert admin_client.get(reverse("admin:football_data_app_ledgerentry_add")).status_code == 403
    assert admin_client.get(reverse("admin:football_data_app_betticket_add")).status_code == 403
    assert not LedgerEntry.objects.exists() and not BetTicket.objects.exists()


def test_admin_is_staff_only(client):
    response = client.get(reverse("admin:football_data_app_betticket_changelist"))
    assert response.status_code == 302 and "/login/" in response["Location"]
