"""Serve every integration's sandbox (fake Graph API, fake API-Football) until stopped."""

import signal
import threading
from importlib import import_module

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the sandboxes listed in settings.SANDBOX_SERVERS, each on its own port."

    def handle(self, *args, **options) -> None:
        servers = []
        for factory_path, host, port in settings.SANDBOX_SERVERS:
            module_name, _, attribute = factory_path.rpartition(".")
            server = getattr(import_module(module_name), attribute)(host, port)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
            self.stdout.write(f"sandbox {factory_path} on http://{host}:{port}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if not servers:
            self.stdout.write("no sandbox configured yet; idling")
        stop.wait()
        for server in servers:
            server.shutdown()
