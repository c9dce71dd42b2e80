"""Admin for tickets, legs and wallets with their ledger."""
