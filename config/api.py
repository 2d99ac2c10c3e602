"""The JSON API (v1), assembled from each app's router; OpenAPI 3.1 at /api/v1/openapi.json."""

from __future__ import annotations

import functools

from django.conf import settings
from django.http import HttpResponseNotAllowed
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI

from accounts.api import PROBLEM_JSON, api_errors_install, problem_response
from accounts.api import router as accounts_router
from apiv1.api import router as apiv1_router


class AtelierAPI(NinjaAPI):
    """NinjaAPI with the few things the document and the answers need beyond ninja's defaults:
    `servers` from SITE_URL (GPT Actions call the first server), error responses documented as
    application/problem+json (what the handlers send), and problem answers for the two refusals
    that happen outside any operation: 405 (a path with another method) and 404 (no such path)."""

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schema["servers"] = [{"url": settings.SITE_URL}]
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, answer in operation.get("responses", {}).items():
                    content = answer.get("content")
                    if str(code).isdigit() and int(code) >= 400 and content and "application/json" in content:
                        answer["content"] = {PROBLEM_JSON: content["application/json"]}
        return schema

    def _get_urls(self):
        urls = super()._get_urls()
        for pattern in urls:
            if isinstance(pattern, URLPattern):
                pattern.callback = _problem_405(pattern.callback)
        urls.append(re_path(r"^.+$", _no_such_path))
        return urls


def _problem_405(view):
    @functools.wraps(view)  # keeps csrf_exempt and the rest of the view's attributes
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = problem_response(
                status=405,
                slug="method_not_allowed",
                detail=f"{request.method} is not allowed here. Allowed: {allowed}.",
            )
            response["Allow"] = allowed
        return response

    return wrapped


@csrf_exempt  # a POST to a mistyped path gets the API's 404, not the CSRF failure page
def _no_such_path(request, *args, **kwargs):
    return problem_response(status=404, slug="not_found", detail="There is no such API endpoint. See /api/v1/docs.")


api = AtelierAPI(
    title="Atelier API",
    version="1",
    description="Generate images from text, edit pictures and make 3D models from pictures with Atelier. "
    "Authenticate with an API key or OAuth token (Bearer). Errors are application/problem+json.",
    urls_namespace="api",
)
api.add_router("/", accounts_router)
api.add_router("/", apiv1_router)
api_errors_install(api)
