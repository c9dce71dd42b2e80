"""Demo superuser, demo data of every app (`<app>/demo.py: load_demo()`), and schedules."""

from importlib import import_module

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from whatsappcrm_backend.env import env_str
from whatsappcrm_backend.schedules import install_schedules

LOCAL_APPS = ("whatsappcrm_backend", "meta_integration", "flows", "football_data_app")


class Command(BaseCommand):
    help = "Create the demo superuser, load each app's demo data and install the schedules."

    def handle(self, *args, **options) -> None:
        username = env_str("DEMO_ADMIN_USERNAME", "admin")
        password = env_str("DEMO_ADMIN_PASSWORD", "admin")
        self.ensure_superuser(username, password)
        for label in LOCAL_APPS:
            apps.get_app_config(label)
            try:
                module = import_module(f"{label}.demo")
            except ModuleNotFoundError:
                continue
            summary = module.load_demo()
            self.stdout.write(f"demo data loaded for {label}: {summary}")
        install_schedules()
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: http://127.0.0.1:8000/admin/  user {username!r} password {password!r}"
            )
        )

    def ensure_superuser(self, username: str, password: str) -> bool:
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            return False
        user_model.objects.create_superuser(username=username, email="", password=password)
        return True
