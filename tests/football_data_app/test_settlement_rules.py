"""The settlement table: every market, line kind and fixture state, then tickets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from football_data_app.settlement import (
    Result,
    TicketState,
    UnsupportedMarket,
    check_selection,
    fixture_verdict,
    leg_factor,
    outcome_result,
    ticket_verdict,
)

W, L, V, P = Result.WON, Result.LOST, Result.VOID, Result.PUSH
HW, HL = Result.HALF_WON, Result.HALF_LOST
MW, DC, DNB, BTTS = "Match Winner", "Double Chance", "Home/Away", "Both Teams Score"
OU, AH = "Goals Over/Under", "Asian Handicap"

OUTCOME_CASES = [
    # match winner (1X2)
    (MW, "Home", 2, 1, W),
    (MW, "Home", 1, 1, L),
    (MW, "Draw", 1, 1, W),
    (MW, "Draw", 0, 1, L),
    (MW, "Away", 0, 1, W),
    (MW, "Away", 3, 0, L),
    # double chance
    (DC, "Home/Draw", 1, 1, W),
    (DC, "Home/Draw", 2, 0, W),
    (DC, "Home/Draw", 0, 2, L),
    (DC, "Home/Away", 1, 1, L),
    (DC, "Home/Away", 0, 1, W),
    (DC, "Draw/Away", 2, 1, L),
    (DC, "Draw/Away", 2, 2, W),
    # draw no bet: a draw refunds
    (DNB, "Home", 1, 0, W),
    (DNB, "Home", 1, 1, P),
    (DNB, "Away", 1, 0, L),
    ("Draw No Bet", "Away", 0, 0, P),
    # both teams score
    (BTTS, "Yes", 1, 1, W),
    (BTTS, "Yes", 1, 0, L),
    (BTTS, "No", 0, 0, W),
    (BTTS, "No", 2, 1, L),
    # over/under: whole lines push on the exact total
    (OU, "Over 2", 1, 1, P),
    (OU, "Over 2", 2, 1, W),
    (OU, "Under 2", 1, 0, W),
    (OU, "Under 3", 2, 1, P),
    # half lines
    (OU, "Over 2.5", 2, 1, W),
    (OU, "Over 2.5", 1, 1, L),
    (OU, "Under 2.5", 1, 1, W),
    (OU, "Under 0.5", 0, 0, W),
    (OU, "Over 0.5", 0, 0, L),
    # quarter lines: half on each neighbour
    (OU, "Over 2.25", 1, 1, HL),
    (OU, "Over 2.25", 2, 1, W),
    (OU, "Over 2.75", 2, 1, HW),
    (OU, "Over 2.75", 1, 1, L),
    (OU, "Under 2.25", 1, 1, HW),
    (OU, "Under 2.75", 2, 1, HL),
    (OU, "Under 2.75", 4, 0, L),
    (OU, "Over 1.75", 3, 1, W),
    # Asian handicap: whole lines
    (AH, "Home -1", 2, 1, P),
    (AH, "Home -1", 3, 1, W),
    (AH, "Away +1", 2, 1, P),
    (AH, "Away +1", 1, 1, W),
    (AH, "Home 0", 1, 1, P),
    (AH, "Home +0", 0, 1, L),
    # half lines
    (AH, "Home -0.5", 1, 0, W),
    (AH, "Home -0.5", 1, 1, L),
    (AH, "Away +0.5", 1, 1, W),
    (AH, "Away +1.5", 2, 0, L),
    (AH, "Home +1.5", 0, 1, W),
    # quarter lines
    (AH, "Home -0.75", 1, 0, HW),
    (AH, "Home -0.75", 2, 0, W),
    (AH, "Home -0.75", 1, 1, L),
    (AH, "Home -0.25", 1, 1, HL),
    (AH, "Home +0.25", 1, 1, HW),
    (AH, "Away +0.75", 1, 0, HL),
    (AH, "Away -0.25", 0, 0, HL),
    (AH, "Away -1.25", 0, 1, HL),
    (AH, "Home -1.75", 2, 0, HW),
    (AH, "Home -1.75", 3, 0, W),
    (AH, "Away +0.25", 0, 1, W),
    (AH, "Away -1", 1, 3, W),
    (OU, "Under 1.25", 0, 1, HW),
    (OU, "Over 3.25", 2, 2, W),
]


@pytest.mark.parametrize(("market", "label", "home", "away", "expected"), OUTCOME_CASES)
def test_outcome_result(market, label, home, away, expected):
    assert outcome_result(bet_type_name=market, label=label, home=home, away=away) == expected


def test_the_table_covers_every_market_and_line_kind():
    assert len(OUTCOME_CASES) >= 60
    markets = {case[0] for case in OUTCOME_CASES}
    assert {MW, DC, DNB, BTTS, OU, AH} <= markets
    for market in (OU, AH):
        lines = {Decimal(c[1].split()[1]) % 1 for c in OUTCOME_CASES if c[0] == market}
        assert {Decimal(0), Decimal("0.5"), Decimal("0.25"), Decimal("0.75")} <= {
            abs(x) for x in lines
        }


def test_line_from_the_outcome_when_the_label_has_none():
    assert (
        outcome_result(bet_type_name=OU, label="Over", line=Decimal("2.25"), home=1, away=1) == HL
    )


@pytest.mark.parametrize(
    ("market", "label"),
    [
        ("Goals Over/Under First Half", "Over 1.5"),
        ("Correct Score", "1:0"),
        (MW, "Home/Draw"),
        (OU, "Over 2.1"),
        (AH, "Over 2.5"),
        (BTTS, "Maybe"),
        (OU, "Over"),
    ],
)
def test_unsupported_markets_and_labels_are_refused(market, label):
    with pytest.raises(UnsupportedMarket):
        check_selection(bet_type_name=market, label=label)


NOW = datetime(2026, 5, 1, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "fulltime", "goals", "postponed_at", "rule", "action", "score"),
    [
        ("FT", (2, 1), (2, 1), None, True, "settle", (2, 1)),
        ("FT", (None, None), (1, 0), None, True, "settle", (1, 0)),  # FT falls back to goals
        ("FT", None, None, None, True, "wait", None),  # never invent a score
        ("AET", (1, 1), (2, 1), None, True, "settle", (1, 1)),  # 90 minutes, not extra time
        ("AET", None, (2, 1), None, True, "wait", None),  # goals include extra time
        ("PEN", (0, 0), (0, 0), None, True, "settle", (0, 0)),  # never the shoot-out
        ("PEN", (None, 1), (1, 1), None, True, "wait", None),
        ("CANC", None, None, None, True, "void", None),
        ("ABD", (1, 0), (1, 0), None, False, "void", None),
        ("AWD", (3, 0), (3, 0), None, True, "void", None),
        ("WO", None, None, None, True, "void", None),
        ("AWD", (3, 0), (3, 0), None, False, "settle", (3, 0)),  # house rule: settle
        ("WO", None, None, None, False, "wait", None),
        ("PST", None, None, NOW - timedelta(hours=47), True, "wait", None),
        ("PST", None, None, NOW - timedelta(hours=48), True, "void", None),
        ("1H", None, (1, 0), None, True, "wait", None),
        ("HT", (None, None), (1, 0), None, True, "wait", None),
        ("2H", None, (1, 0), None, True, "wait", None),
        ("ET", (1, 1), (1, 1), None, True, "wait", None),
        ("P", (1, 1), (1, 1), None, True, "wait", None),
        ("SUSP", None, (0, 0), None, True, "wait", None),
        ("INT", None, (0, 0), None, True, "wait", None),
        ("NS", None, None, None, True, "wait", None),
        ("TBD", None, None, None, True, "wait", None),
        ("XYZ", (1, 0), (1, 0), None, True, "wait", None),
    ],
)
def test_fixture_verdict(status, fulltime, goals, postponed_at, rule, action, score):
    verdict = fixture_verdict(
        status=status,
        fulltime=fulltime,
        goals=goals,
        now=NOW,
        kickoff=NOW - timedelta(days=3),
        postponed_at=postponed_at,
        void_not_played_on_pitch=rule,
        postponed_void_hours=48,
    )
    assert verdict.action == action
    assert verdict.reason
    if score:
        assert (verdict.home, verdict.away) == score


def test_postponed_hours_is_a_parameter_and_falls_back_to_kickoff():
    kickoff = NOW - timedelta(hours=60)
    args = {"status": "PST", "fulltime": None, "goals": None, "now": NOW, "kickoff": kickoff}
    assert fixture_verdict(**args, postponed_void_hours=72).action == "wait"
    assert fixture_verdict(**args, postponed_void_hours=48).action == "void"


D = Decimal


@pytest.mark.parametrize(
    ("stake", "legs", "status", "payout"),
    [
        # singles
        (D("10"), [(D("2.50"), W)], TicketState.WON, D("25.00")),
        (D("10"), [(D("2.50"), L)], TicketState.LOST, D("0.00")),
        (D("10"), [(D("2.50"), V)], TicketState.VOID, D("10.00")),
        (D("10"), [(D("1.90"), P)], TicketState.VOID, D("10.00")),
        (D("10"), [(D("1.90"), HW)], TicketState.WON, D("14.50")),
        (D("10"), [(D("1.90"), HL)], TicketState.LOST, D("5.00")),
        # rounding down to the cent
        (D("3.33"), [(D("1.333"), W)], TicketState.WON, D("4.43")),  # 4.43889
        (D("0.99"), [(D("1.015"), W)], TicketState.WON, D("1.00")),  # 1.00485
        (D("7"), [(D("1.87"), HW)], TicketState.WON, D("10.04")),  # 10.045
        # accumulators
        (D("10"), [(D("2"), W), (D("1.5"), W)], TicketState.WON, D("30.00")),
        (D("10"), [(D("2"), W), (D("1.5"), L)], TicketState.LOST, D("0.00")),
        (D("10"), [(D("2"), W), (D("1.5"), V)], TicketState.WON, D("20.00")),
        (D("10"), [(D("2"), V), (D("1.5"), V)], TicketState.VOID, D("10.00")),
        (D("10"), [(D("2"), V), (D("1.5"), P), (D("3"), V)], TicketState.VOID, D("10.00")),
        (D("10"), [(D("2"), W), (D("1.9"), HW)], TicketState.WON, D("29.00")),
        (D("10"), [(D("2"), W), (D("1.9"), HL)], TicketState.WON, D("10.00")),
        (D("10"), [(D("1.5"), W), (D("1.9"), HL)], TicketState.LOST, D("7.50")),
        (D("10"), [(D("1.333"), W), (D("1.777"), W), (D("2.05"), W)], TicketState.WON, D("48.55")),
        # a lost leg decides at once, even while another waits
        (D("10"), [(D("2"), L), (D("1.5"), None)], TicketState.LOST, D("0.00")),
    ],
)
def test_ticket_verdict(stake, legs, status, payout):
    verdict = ticket_verdict(stake=stake, legs=legs)
    assert verdict.decided
    assert verdict.status == status
    assert verdict.payout == payout
    assert verdict.payout.as_tuple().exponent == -2


def test_waiting_legs_keep_the_ticket_open():
    none = ticket_verdict(stake=D("5"), legs=[(D("2"), None), (D("3"), None)])
    assert (none.decided, none.status, none.payout) == (False, TicketState.PLACED, None)
    some = ticket_verdict(stake=D("5"), legs=[(D("2"), W), (D("3"), None)])
    assert (some.decided, some.status) == (False, TicketState.PARTIALLY_SETTLED)


def test_leg_factors():
    assert leg_factor(D("2.2"), W) == D("2.2")
    assert leg_factor(D("2.2"), HW) == D("1.6")
    assert leg_factor(D("2.2"), HL) == D("0.5")
    assert leg_factor(D("2.2"), P) == leg_factor(D("2.2"), V) == 1
    assert leg_factor(D("2.2"), L) == 0
