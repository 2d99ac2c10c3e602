"""/oauth/: authorize (consent screen), token, revoke, and dynamic client registration."""

from __future__ import annotations

app_name = "oauth"
urlpatterns: list = []
