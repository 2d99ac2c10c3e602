"""The site's URLs plus /bench/bare/: `return JsonResponse({})` behind the API's own Bearer auth
(generate scope for POST, read for GET), the baseline bench/api.py compares the API against."""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import include, path
from ninja import NinjaAPI

from accounts.api import generate_auth, read_auth

bench_api = NinjaAPI(urls_namespace="bench", docs_url=None, openapi_url=None)


@bench_api.post("/", auth=generate_auth)
def bare_post(request):
    return JsonResponse({})


@bench_api.get("/", auth=read_auth)
def bare_get(request):
    return JsonResponse({})


urlpatterns = [path("bench/bare/", bench_api.urls), path("", include("config.urls"))]
