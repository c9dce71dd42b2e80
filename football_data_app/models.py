"""Leagues, fixtures, odds, bet tickets and the wallet ledger arrive with the football issue."""
