from __future__ import annotations

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    """Model catalog, generations and assets, providers and the gallery (generation issue)."""

    name = "generation"
