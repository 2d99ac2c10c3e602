"""Pages the API links to: the signed 3D viewer a chat can open without signing in."""

from __future__ import annotations

from django.urls import path

from apiv1 import views

app_name = "apiv1"
urlpatterns = [
    path("view/3d/<str:token>/", views.viewer, name="viewer"),
]
