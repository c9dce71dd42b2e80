"""Football admin: catalogue pages (catalogue.py) and betting pages (betting.py)."""

from football_data_app.admin import betting, catalogue  # noqa: F401
