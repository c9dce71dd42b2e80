from django.apps import AppConfig


class FootballDataAppConfig(AppConfig):
    name = "football_data_app"
    verbose_name = "Football data"

    def ready(self) -> None:
        # Registers the football.* flow actions (flows never imports this app).
        from football_data_app import actions  # noqa: F401
