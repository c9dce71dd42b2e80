from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Conversation flows"

    def ready(self) -> None:
        from flows import signals  # noqa: F401 - connects the cache-invalidation receivers
