"""The site's URLs plus /bench/bare/: base.html rendered with no queries (the baseline)."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import include, path


def bare(request):
    return render(request, "base.html")


urlpatterns = [path("bench/bare/", bare), path("", include("config.urls"))]
