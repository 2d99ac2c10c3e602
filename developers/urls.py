from __future__ import annotations

from django.urls import path

from accounts import views_developers as views

app_name = "developers"  # the guide page, keys, connected apps, webhooks
urlpatterns = [
    path("keys/", views.keys, name="keys"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
]
