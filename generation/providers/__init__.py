"""Providers by name. Each vendor SDK stays inside its own module."""

from __future__ import annotations

from generation.providers.base import Provider


def get_provider(name: str) -> Provider:
    if name == "local":
        from generation.providers.local import LocalProvider

        return LocalProvider()
    if name == "replicate":
        from generation.providers.replicate import ReplicateProvider

        return ReplicateProvider()
    raise ValueError(f"unknown provider {name!r}")
