from __future__ import annotations

from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("create/", views.create, name="create"),
    path("create/fields/", views.model_fields, name="model_fields"),
    path("g/<uuid:uuid>/", views.detail, name="detail"),
    path("g/<uuid:uuid>/status/", views.status_fragment, name="status"),
    path("g/<uuid:uuid>/cancel/", views.cancel, name="cancel"),
    path("g/<uuid:uuid>/retry/", views.retry, name="retry"),
    path("a/<uuid:uuid>/download/", views.download, name="download"),
    path("files/<str:token>/", views.signed_file, name="file"),
    path("webhooks/replicate/", views.replicate_webhook, name="replicate_webhook"),
]
