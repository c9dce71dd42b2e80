from django.core.management.base import BaseCommand

from whatsappcrm_backend.schedules import install_schedules


class Command(BaseCommand):
    help = "Install the beat schedules declared in each app's schedules.py."

    def handle(self, *args, **options) -> None:
        for name in install_schedules():
            self.stdout.write(f"schedule installed: {name}")
