"""API v1's generation endpoints (models, generations: create, list, get, cancel, delete)."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["generations"])
