"""Settlement tasks: outcomes, tickets, payouts and settlement notifications."""
