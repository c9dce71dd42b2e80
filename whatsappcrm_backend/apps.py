from django.apps import AppConfig


class WhatsappcrmBackendConfig(AppConfig):
    name = "whatsappcrm_backend"
    verbose_name = "Job operations"
