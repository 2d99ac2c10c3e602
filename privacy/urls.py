from __future__ import annotations

from django.urls import path

from privacy.views import centre, choices, erasure, export, policy

app_name = "privacy"
urlpatterns = [
    path("", centre.centre, name="centre"),
    *policy.urlpatterns,
    *export.urlpatterns,
    *erasure.urlpatterns,
    *choices.urlpatterns,
]
