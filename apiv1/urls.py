"""Pages the API links to: the signed 3D viewer a chat can open without signing in."""

from __future__ import annotations

urlpatterns: list = []
