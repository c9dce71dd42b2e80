"""Task results, schedules, failed work, sessions, latency and message lookup."""

urlpatterns: list = []
