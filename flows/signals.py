"""Any change to a Flow, Step or Transition bumps the definitions version (flows/cache.py).

Signals rather than calls in the admin: edits from the admin, import, the demo loader or a
shell all invalidate the cache the same way.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from flows.cache import bump_version
from flows.models import Flow, Step, Transition


@receiver(post_save, sender=Flow)
@receiver(post_save, sender=Step)
@receiver(post_save, sender=Transition)
@receiver(post_delete, sender=Flow)
@receiver(post_delete, sender=Step)
@receiver(post_delete, sender=Transition)
def definitions_changed(sender: type, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # loaddata: the fixture's own flows are not live edits
    bump_version()
