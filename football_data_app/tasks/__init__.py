"""Football tasks, all on the `football_data` queue (routes in whatsappcrm_backend/celery.py).

Celery's autodiscovery imports this package; each module registers its own tasks.
"""

from football_data_app.tasks import ingestion, settlement  # noqa: F401
