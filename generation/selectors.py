from __future__ import annotations

from django.conf import settings
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404

from generation.models import Asset, AssetRole, Generation


def _with_assets(queryset):
    return queryset.select_related("model").prefetch_related(
        Prefetch("assets", queryset=Asset.objects.order_by("role", "index"))
    )


def generation_for_owner(*, user, uuid) -> Generation:
    """The person's own generation, or 404 — another person's id looks exactly like a missing one."""
    return get_object_or_404(_with_assets(Generation.objects.filter(owner=user)), uuid=uuid)


def asset_for_owner(*, user, uuid) -> Asset:
    return get_object_or_404(Asset.objects.select_related("generation"), uuid=uuid, generation__owner=user)


def recent_generations(*, user, limit: int | None = None):
    return _with_assets(Generation.objects.filter(owner=user))[: limit or settings.GENERATION_RECENT_LIMIT]


def assets_by_role(generation: Generation) -> dict[str, list[Asset]]:
    grouped: dict[str, list[Asset]] = {role: [] for role in AssetRole.values}
    for asset in generation.assets.all():
        grouped[asset.role].append(asset)
    return grouped
