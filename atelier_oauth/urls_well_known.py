"""/.well-known/: oauth-authorization-server (RFC 8414), oauth-protected-resource (RFC 9728)."""

from __future__ import annotations

urlpatterns: list = []
