from __future__ import annotations

from django.urls import path

from accounts import views_developers as key_views
from developers import views

app_name = "developers"  # the guide page, keys, connected apps, webhooks
urlpatterns = [
    path("", views.index, name="index"),
    # The problem+json `type` of API errors is <SITE_URL>/developers/errors#<type>: the guide's section.
    path("errors", views.index, name="errors"),
    path("keys/", key_views.keys, name="keys"),
    path("keys/<int:pk>/revoke/", key_views.key_revoke, name="key_revoke"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/<uuid:uuid>/", views.webhook, name="webhook"),
    path("webhooks/<uuid:uuid>/roll-secret/", views.webhook_roll, name="webhook_roll"),
    path("webhooks/<uuid:uuid>/toggle/", views.webhook_toggle, name="webhook_toggle"),
    path("webhooks/<uuid:uuid>/delete/", views.webhook_delete, name="webhook_delete"),
    path("webhooks/<uuid:uuid>/test/", views.webhook_test, name="webhook_test"),
    path("webhooks/<uuid:uuid>/deliveries/<int:pk>/resend/", views.delivery_resend, name="delivery_resend"),
]
