"""Placing bet tickets: every check and the stake's ledger entry in one transaction.

The wallet row is locked first (select_for_update), so two placements by one customer queue
and the balance check cannot be raced. The odds, line and label agreed at placement are copied
onto the legs: an odds refresh or an outcome going inactive later changes nothing placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from football_data_app import settlement
from football_data_app.models import BetLeg, BetTicket, Outcome, TicketKind, Wallet
from football_data_app.services.wallet import (
    WalletError,
    _positive,
    wallet_get_or_create,
    wallet_stake,
)
from meta_integration.models import Contact

OPEN_FOR_BETTING = frozenset({"NS", "TBD"})
MAX_LEGS = 10


class TicketRefused(ValueError):
    """A placement that was refused; the message is safe to show the customer."""


def _outcome_id(selection: Any) -> int:
    raw = selection[0] if isinstance(selection, list | tuple) else selection
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise TicketRefused(f"{raw!r} is not a selection") from exc


@transaction.atomic
def ticket_place(
    *,
    contact: Contact,
    selections: Sequence[Any],
    stake: Decimal | str,
    now: datetime | None = None,
) -> BetTicket:
    """Place a single (one selection) or an accumulator (one leg per fixture).

    `selections` is a list of outcome ids (or tuples whose first item is the id). Raises
    TicketRefused with the reason; nothing is written then.
    """
    now = now or timezone.now()
    ids = [_outcome_id(s) for s in selections]
    if not ids:
        raise TicketRefused("Pick at least one selection.")
    if len(ids) > MAX_LEGS:
        raise TicketRefused(f"A ticket has at most {MAX_LEGS} selections.")
    if len(set(ids)) != len(ids):
        raise TicketRefused("The same selection is on the slip twice.")
    try:
        amount = _positive(stake)
    except WalletError as exc:
        raise TicketRefused(f"The stake must be a positive amount ({exc}).") from exc
    if amount > Decimal(settings.FOOTBALL_MAX_STAKE):
        raise TicketRefused(f"The most you can stake is {settings.FOOTBALL_MAX_STAKE}.")

    outcomes = {
        o.pk: o
        for o in Outcome.objects.select_related(
            "market__bet_type", "market__fixture__home_team", "market__fixture__away_team"
        ).filter(pk__in=ids)
    }
    fixtures_seen: set[int] = set()
    for outcome_id in ids:
        outcome = outcomes.get(outcome_id)
        if outcome is None:
            raise TicketRefused(f"Selection {outcome_id} does not exist.")
        fixture = outcome.market.fixture
        if not outcome.active:
            raise TicketRefused(f"{outcome.label} is no longer available.")
        if fixture.status not in OPEN_FOR_BETTING or fixture.kickoff <= now:
            raise TicketRefused(f"{fixture.home_team} v {fixture.away_team} has already started.")
        if fixture.pk in fixtures_seen:
            raise TicketRefused("An accumulator takes one selection per fixture.")
        fixtures_seen.add(fixture.pk)
        try:
            settlement.check_selection(
                bet_type_name=outcome.market.bet_type.name, label=outcome.label, line=outcome.line
            )
        except settlement.UnsupportedMarket as exc:
            raise TicketRefused(f"{outcome.market.bet_type.name} cannot be bet on here.") from exc

    wallet = wallet_get_or_create(contact=contact)
    # Lock the wallet: the balance check below and the debit cannot be raced.
    wallet = Wallet.objects.select_for_update().get(pk=wallet.pk)
    if wallet.balance < amount:
        raise TicketRefused(f"Your balance is {wallet.balance}; the stake is {amount}.")

    ticket = BetTicket.objects.create(
        contact=contact,
        kind=TicketKind.SINGLE if len(ids) == 1 else TicketKind.ACCUMULATOR,
        stake=amount,
    )
    BetLeg.objects.bulk_create(
        [
            BetLeg(
                ticket=ticket,
                outcome=outcomes[i],
                fixture_id=outcomes[i].market.fixture_id,
                odds=outcomes[i].odds,
                line=outcomes[i].line,
                label=outcomes[i].label,
                bet_type_name=outcomes[i].market.bet_type.name,
            )
            for i in ids
        ]
    )
    wallet_stake(wallet=wallet, ticket=ticket, amount=amount)
    return ticket


def potential_return(ticket: BetTicket) -> Decimal:
    """Stake x product of the agreed odds, rounded down (what the customer is shown)."""
    product = Decimal("1")
    for leg in ticket.legs.all():
        product *= leg.odds
    return settlement.round_down(ticket.stake * product)
