from __future__ import annotations

import logging
import mimetypes

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing.errors import InsufficientCredits
from billing.selectors import balance_of
from generation import selectors, services, storage
from generation.errors import InvalidInput, NotAllowed, ProviderError, SubmitRateLimited
from generation.forms import TABS, CreateForm
from generation.models import Provider, ProviderWebhook
from generation.providers import get_provider
from generation.providers.base import WebhookRejected

logger = logging.getLogger(__name__)


def _tab(request: HttpRequest) -> str:
    tab = request.GET.get("tab") or request.POST.get("tab") or "image"
    return tab if tab in TABS else "image"


@login_required
def create(request: HttpRequest) -> HttpResponse:
    tab = _tab(request)
    models = services.catalog_available().filter(kind=TABS[tab])
    status, retry_after = 200, None
    if request.method == "POST":
        form = CreateForm(request.POST, request.FILES, models=models)
        try:
            services.generation_submit_throttle(request=request)
        except SubmitRateLimited as exc:
            form.full_clean()  # the page shows what was typed; errors need a cleaned form
            form.add_error(None, str(exc))
            status, retry_after = exc.status, exc.retry_after
        if status == 200 and form.is_valid():
            spec = services.GenerationSpec(
                model=form.cleaned_data["model"],
                values={k: v for k, v in form.cleaned_data.items() if k not in {"model", "image", "image_url"}},
                image_upload=form.cleaned_data.get("image"),
                image_url=form.cleaned_data.get("image_url") or "",
            )
            try:
                generation = services.generation_submit(user=request.user, spec=spec)
            except InvalidInput as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            except ProviderError as exc:  # our storage is down: nothing was charged
                logger.warning("submit failed: %s", exc.detail)
                form.add_error(None, str(exc))
            except InsufficientCredits as exc:
                form.add_error(
                    None, format_html('{} <a href="{}">See your credits</a>.', str(exc), reverse("billing:overview"))
                )
            else:
                return redirect("generation:detail", uuid=generation.uuid)
    else:
        form = CreateForm(models=models)
    context = {
        "form": form,
        "tab": tab,
        "tabs": [("image", "Image"), ("edit", "Edit"), ("3d", "3D")],
        "models": models,
        "selected": form.selected_model(),
        "balance": balance_of(user=request.user),
        "recent": selectors.recent_generations(user=request.user),
    }
    response = render(request, "generation/create.html", context, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@login_required
@require_GET
def model_fields(request: HttpRequest) -> HttpResponse:
    """htmx: the parameter fields for the model just picked."""
    tab = _tab(request)
    models = services.catalog_available().filter(kind=TABS[tab])
    form = CreateForm(initial={"model": request.GET.get("model")}, models=models)
    return render(request, "generation/_model_fields.html", {"form": form, "selected": form.selected_model()})


def _detail_context(request: HttpRequest, uuid) -> dict:
    generation = selectors.generation_for_owner(user=request.user, uuid=uuid)
    assets = selectors.assets_by_role(generation)
    output = assets["output"][0] if assets["output"] else None
    return {
        "generation": generation,
        "assets": assets,
        "output": output,
        "output_url": storage.access_url(output.storage_key, filename=output.filename) if output else None,
        "input_url": (
            storage.access_url(assets["input"][0].storage_key, filename=assets["input"][0].filename)
            if assets["input"]
            else None
        ),
        "is_local": generation.model.provider == Provider.LOCAL,
    }


# What the vendored <model-viewer> 4.4.0 needs, on the result page only: WebAssembly (mesh
# decoders; 'wasm-unsafe-eval' allows compiling WASM, not JavaScript eval), blob: fetches of the
# textures it unpacks from the GLB, and the one <style> it injects (allowed by its hash).
MODEL_VIEWER_CSP = {
    "script-src": ["'self'", "'wasm-unsafe-eval'"],
    "connect-src": ["'self'", "blob:", *settings.MEDIA_ORIGINS],
    "style-src": ["'self'", "'sha256-PXtZZkJMMyc18o/DN1ZEFOJ2qEGq95IQbVaJFMOXOb0='"],
}


@login_required
@csp_update(MODEL_VIEWER_CSP)
def detail(request: HttpRequest, uuid) -> HttpResponse:
    return render(request, "generation/detail.html", _detail_context(request, uuid))


@login_required
@require_GET
def status_fragment(request: HttpRequest, uuid) -> HttpResponse:
    """htmx polls this until the job is final; then it renders the result without a trigger."""
    response = render(request, "generation/_status.html", _detail_context(request, uuid))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def cancel(request: HttpRequest, uuid) -> HttpResponse:
    generation = selectors.generation_for_owner(user=request.user, uuid=uuid)
    try:
        services.generation_cancel(user=request.user, generation=generation)
        messages.success(request, f"Canceled. {generation.cost} credits are back in your balance.")
    except NotAllowed as exc:
        messages.error(request, str(exc))
    return redirect("generation:detail", uuid=uuid)


@login_required
@require_POST
def retry(request: HttpRequest, uuid) -> HttpResponse:
    generation = selectors.generation_for_owner(user=request.user, uuid=uuid)
    try:
        new = services.generation_retry(user=request.user, generation=generation)
    except (NotAllowed, InvalidInput, ProviderError) as exc:
        messages.error(request, str(exc))
        return redirect("generation:detail", uuid=uuid)
    except InsufficientCredits as exc:
        messages.error(request, str(exc))
        return redirect("generation:detail", uuid=uuid)
    return redirect("generation:detail", uuid=new.uuid)


@login_required
@require_GET
def download(request: HttpRequest, uuid) -> HttpResponse:
    """Owner-only: a short-lived URL to one asset (presigned S3 or a signed local URL)."""
    asset = selectors.asset_for_owner(user=request.user, uuid=uuid)
    return redirect(storage.access_url(asset.storage_key, filename=asset.filename, download=True))


@require_GET
def signed_file(request: HttpRequest, token: str) -> HttpResponse:
    """Local-file storage only: serve an object named by a signed, expiring token."""
    try:
        data = storage.unsign(token)
    except signing.BadSignature as exc:
        raise Http404("This link has expired.") from exc
    try:
        handle = storage.open_local(data["k"])
    except (FileNotFoundError, KeyError) as exc:
        raise Http404("Not found.") from exc
    filename = data.get("f") or data["k"].rsplit("/", 1)[-1]
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if filename.endswith(".glb"):
        content_type = "model/gltf-binary"
    response = FileResponse(handle, as_attachment=bool(data.get("d")), filename=filename, content_type=content_type)
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _webhook_ids_problem(*, webhook_id, prediction_id) -> str:
    """Why the ids of a verified delivery cannot be used, or "". Checked before the database sees
    them: PostgreSQL refuses text with NUL characters and the columns have lengths, and either
    would be a 500 halfway through, whatever a provider's parser let through."""
    for name, value, field in (
        ("webhook-id", webhook_id, "webhook_id"),
        ("prediction id", prediction_id, "prediction_id"),
    ):
        limit = ProviderWebhook._meta.get_field(field).max_length
        if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
            return f"{name} is missing, longer than {limit} characters or contains NUL"
    return ""


@csrf_exempt
@require_POST
def replicate_webhook(request: HttpRequest) -> JsonResponse:
    """Verify, dedupe by webhook-id, hand the work to a task, answer fast."""
    from generation.tasks import sync_generation

    if not services.provider_available(Provider.REPLICATE):
        return JsonResponse({"error": "replicate is not configured"}, status=404)
    try:
        webhook_id, state = get_provider(Provider.REPLICATE).parse_webhook(request)
    except WebhookRejected as exc:
        logger.warning("replicate webhook refused: %s", exc)
        return JsonResponse({"error": "invalid webhook", "reason": str(exc)[:200]}, status=400)
    problem = _webhook_ids_problem(webhook_id=webhook_id, prediction_id=state.id)
    if problem:
        logger.warning("replicate webhook refused: %s", problem)
        return JsonResponse({"error": "invalid webhook", "reason": problem}, status=400)
    try:
        generation = services.webhook_record(provider=Provider.REPLICATE, webhook_id=webhook_id, prediction_id=state.id)
    except services.Generation.DoesNotExist:
        return JsonResponse({"error": "unknown prediction"}, status=404)
    if generation is None:
        return JsonResponse({"status": "duplicate"})
    sync_generation.delay(generation.pk)
    return JsonResponse({"status": "accepted"}, status=202)
