"""Providers by name. Each vendor SDK stays inside its own module.

A catalog row's `provider` names an entry of REGISTRY; the module is imported on first use, so
an unconfigured provider's SDK is never loaded.
"""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from generation.providers.base import Provider

REGISTRY: dict[str, str] = {
    "local": "generation.providers.local.LocalProvider",
    "replicate": "generation.providers.replicate.ReplicateProvider",
}


@cache
def _load(path: str) -> type[Provider]:
    return import_string(path)


def get_provider(name: str) -> Provider:
    try:
        path = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}") from None
    return _load(path)()


def provider_available(name: str) -> bool:
    """A provider we know and that is configured here (an unknown name is simply unavailable)."""
    return name in REGISTRY and get_provider(name).available()
