"""/oauth/: authorize (consent screen), token, revoke, dynamic client registration, and the
signed-in person's connected apps."""

from __future__ import annotations

from django.urls import path
from oauth2_provider.views import RevokeTokenView, TokenView

from atelier_oauth import views

app_name = "oauth"
urlpatterns = [
    path("authorize/", views.ConsentView.as_view(), name="authorize"),
    path("token/", TokenView.as_view(), name="token"),
    path("revoke/", RevokeTokenView.as_view(), name="revoke"),
    path("register/", views.RegisterView.as_view(), name="register"),
    path("connections/", views.connections, name="connections"),
    path("connections/<int:application_id>/revoke/", views.connection_revoke, name="connection_revoke"),
]
