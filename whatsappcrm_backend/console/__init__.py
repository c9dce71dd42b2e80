"""The job-operations console: queue health, workers, task results, schedules, failed work,
sessions and message latency, as staff-only pages beside the Django admin, JSON, Prometheus
metrics and management commands."""
