from __future__ import annotations

from django.apps import AppConfig


class WhatsappcrmBackendConfig(AppConfig):
    name = "whatsappcrm_backend"
    verbose_name = "Job operations"

    def ready(self) -> None:
        # The console's metrics and heartbeats hang off Celery signals in every process
        # (web publishes, workers run, beat ticks).
        from whatsappcrm_backend.console import heartbeats, signals

        signals.connect()
        heartbeats.connect()
