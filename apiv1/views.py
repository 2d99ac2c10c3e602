"""The signed 3D viewer page: what an API or MCP answer's `viewer_url` opens."""

from __future__ import annotations

from csp.decorators import csp_update
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from apiv1 import engine
from generation import storage
from generation.views import MODEL_VIEWER_CSP, download_name


@require_safe  # GET and HEAD (link unfurlers ask with HEAD)
@csp_update(MODEL_VIEWER_CSP)
def viewer(request: HttpRequest, token: str) -> HttpResponse:
    """Shows one finished 3D model to whoever holds the signed link, signed in or not, until the
    link expires (API_VIEWER_LINK_SECONDS). The page names the model and nothing of the account
    (no prompt, no owner); the GLB itself comes from a short-lived signed storage link made now.
    An expired link is a 410 that says so; a tampered or dead one a 404."""
    try:
        generation, expires = engine.viewer_generation(token)
    except engine.ViewerLinkExpired:
        return _private(render(request, "apiv1/viewer_gone.html", {"expired": True}, status=410))
    except engine.ViewerLinkInvalid:
        return _private(render(request, "apiv1/viewer_gone.html", {"expired": False}, status=404))
    model_file = next(asset for asset in engine.outputs_of(generation) if asset.mime_type == engine.GLB_MIME)
    name = download_name(model_file)
    context = {
        "generation": generation,
        "model_file": model_file,
        "model_url": storage.access_url(model_file.storage_key, filename=name),
        "download_url": storage.access_url(model_file.storage_key, filename=name, download=True),
        "download_name": name,
        "expires": expires,
    }
    return _private(render(request, "apiv1/viewer.html", context))


def _private(response: HttpResponse) -> HttpResponse:
    # The token in the URL is the key to the page: never cached by a proxy, never sent on as a
    # Referer (to the storage host or a link clicked), never indexed.
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response
