"""Engine options from settings (read at call time, so tests and reloads see changes)."""

from __future__ import annotations

from django.conf import settings

from flows.engine import DEFAULT_TEXTS, Options, parse_global_commands


def engine_options() -> Options:
    commands = getattr(settings, "FLOWS_GLOBAL_COMMANDS", ["menu", "cancel"])
    # Optional FLOWS_TEXTS overrides the built-in texts (e.g. to translate them); its keys are
    # those of flows.engine.DEFAULT_TEXTS.
    texts = {**DEFAULT_TEXTS, **getattr(settings, "FLOWS_TEXTS", {})}
    return Options(global_commands=parse_global_commands(commands), texts=texts)
