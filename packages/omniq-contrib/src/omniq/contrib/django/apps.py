"""The Django app configuration of ``omniq.contrib.django``."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["OmniQConfig"]


class OmniQConfig(AppConfig):
    """``INSTALLED_APPS = [..., "omniq.contrib.django"]``: brings the ``omniq_worker`` and
    ``omniq_scheduler`` management commands; ``settings.OMNIQ`` configures OmniQ."""

    name = "omniq.contrib.django"
    label = "omniq"
    verbose_name = "OmniQ"
