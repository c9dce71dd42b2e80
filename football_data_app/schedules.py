"""Beat schedules of the football app (filled by the football issue)."""

SCHEDULES: list[dict[str, object]] = []
