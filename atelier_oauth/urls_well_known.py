"""/.well-known/: oauth-authorization-server (RFC 8414), oauth-protected-resource (RFC 9728) for the
API (/api/v1) and for /mcp in the path form (section 3.1), and the root form for SITE_URL itself
(section 3.3), naming the same authorization server."""

from __future__ import annotations

from django.urls import path

from atelier_oauth import views

urlpatterns = [
    path(
        "oauth-authorization-server",
        views.AuthorizationServerMetadataView.as_view(),
        name="oauth-authorization-server",
    ),
    path(
        "oauth-protected-resource",
        views.ProtectedResourceMetadataView.as_view(resource="site"),
        name="oauth-protected-resource",
    ),
    path(
        "oauth-protected-resource/api/v1",
        views.ProtectedResourceMetadataView.as_view(resource="api"),
        name="oauth-protected-resource-api",
    ),
    path(
        "oauth-protected-resource/mcp",
        views.ProtectedResourceMetadataView.as_view(resource="mcp"),
        name="oauth-protected-resource-mcp",
    ),
]
