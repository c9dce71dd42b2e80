from django.apps import AppConfig


class MetaIntegrationConfig(AppConfig):
    name = "meta_integration"
    verbose_name = "WhatsApp channel"

    def ready(self) -> None:
        # Celery autodiscovers only `tasks` modules; this one registers the template sync.
        from meta_integration import (
            checks,  # noqa: F401 - registers the system checks
            template_tasks,  # noqa: F401
        )
