from django.apps import AppConfig


class FootballDataAppConfig(AppConfig):
    name = "football_data_app"
    verbose_name = "Football data"
