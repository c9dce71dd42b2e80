"""Settings of the Celery workers the channel's tests start: the project's, with short waits.

Workers get `DJANGO_SETTINGS_MODULE=tests.meta_integration.worker_settings` so retries and the
breaker's reset take a fraction of a second instead of production's seconds and minutes.
"""

from whatsappcrm_backend.settings import *  # noqa: F403

META_SEND_RETRY_BASE_SECONDS = 0.2
META_SEND_RETRY_MAX_SECONDS = 2.0
META_BREAKER_RESET_SECONDS = 1.0
