from __future__ import annotations

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    """Model catalog, generations and assets, providers and the gallery (generation issue)."""

    name = "generation"

    def ready(self) -> None:
        from django.core import checks

        from generation.marking import check_c2pa_settings

        checks.register(check_c2pa_settings, checks.Tags.compatibility)
