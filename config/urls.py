from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from accounts import views as accounts_views
from billing import views as billing_views
from config import health, views
from config.api import api

admin.site.site_header = "Atelier back office"
admin.site.site_title = "Atelier admin"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", health.healthz, name="healthz"),
    # Google's allauth views, answering 404 (not 500) while Google is not configured.
    path("accounts/google/login/", accounts_views.google_login),
    path("accounts/google/login/callback/", accounts_views.google_callback),
    path("accounts/google/login/token/", accounts_views.google_login_by_token),
    path("accounts/", include("allauth.urls")),
    path("account/", include("accounts.urls")),
    path("privacy/", include("privacy.urls")),
    path("developers/", include("developers.urls")),
    # OAuth 2.1 authorization server (atelier_oauth) and its RFC 8414 / RFC 9728 metadata.
    path("oauth/", include("atelier_oauth.urls")),
    path(".well-known/", include("atelier_oauth.urls_well_known")),
    # The MCP server (streamable HTTP at /mcp) and the API's signed 3D viewer page.
    path("", include("mcpserver.urls")),
    path("", include("apiv1.urls")),
    path("billing/", include("billing.urls")),
    path("pricing/", billing_views.pricing, name="pricing"),
    path("webhooks/stripe/", billing_views.stripe_webhook, name="stripe_webhook"),
    path("", include("generation.urls")),
    path("api/v1/", api.urls),
    # Staff sign in through allauth's rate-limited login (see accounts.views.admin_login).
    path("admin/login/", accounts_views.admin_login),
    path("admin/", admin.site.urls),
]
