"""Privacy centre: export pages (filled in by the privacy issue's export work)."""

from __future__ import annotations

urlpatterns: list = []


def section_context(user) -> dict:
    """What the privacy centre page needs for this section."""
    return {}
