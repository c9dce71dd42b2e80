from django.apps import AppConfig


class MetaIntegrationConfig(AppConfig):
    name = "meta_integration"
    verbose_name = "WhatsApp channel"
