"""The JSON API, assembled from each app's router (the GPT Actions issue adds keys and OAuth)."""

from __future__ import annotations

from ninja import NinjaAPI

from accounts.api import api_errors_install
from accounts.api import router as accounts_router
from apiv1.api import router as apiv1_router

api = NinjaAPI(
    title="Atelier API",
    version="1",
    description="Generate images, edits and 3D models with Atelier.",
    urls_namespace="api",
)
api.add_router("/", accounts_router)
api.add_router("/", apiv1_router)
api_errors_install(api)
