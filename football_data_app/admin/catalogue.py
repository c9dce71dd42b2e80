"""Admin for leagues, fixtures, markets, outcomes and API errors."""
