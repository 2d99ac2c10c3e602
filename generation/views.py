from __future__ import annotations

import logging
import mimetypes
import uuid as uuid_module

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing.errors import InsufficientCredits
from billing.selectors import balance_of
from config.errors import ApplicationError, form_error
from generation import catalog, selectors, services, storage
from generation.errors import AccountPaused, InvalidInput, NotAllowed, ProviderError, SubmitRateLimited
from generation.forms import TABS, CreateForm
from generation.models import Asset, AssetRole, Generation, Provider, ProviderWebhook
from generation.providers import get_provider
from generation.providers.base import WebhookRejected

logger = logging.getLogger(__name__)


def _tab(request: HttpRequest) -> str:
    tab = request.GET.get("tab") or request.POST.get("tab") or "image"
    return tab if tab in TABS else "image"


KIND_TABS = {kind: tab for tab, kind in TABS.items()}
SPEC_EXCLUDED = {"model", "image", "image_url", "source_asset", "pending_upload"}
REMIXED = ("prompt", "negative_prompt", "aspect_ratio", "style", "strength", "num_outputs", "seed")


def _prefill(request: HttpRequest) -> dict:
    """Initial values for /create/: `?remix=<generation>` copies every parameter (seed
    included) and its input picture; `?source=<asset>` makes one of the person's pictures the
    input ("Edit this", "Make 3D from this"). Another person's ids are 404s."""
    initial: dict = {}
    if request.GET.get("remix"):
        original = selectors.generation_for_owner(user=request.user, uuid=_uuid_or_404(request.GET["remix"]))
        initial = {"model": original.model.slug, "prompt": original.prompt, "negative_prompt": original.negative_prompt}
        initial.update({name: value for name, value in (original.params or {}).items() if name in REMIXED})
        if original.seed is not None:
            initial["seed"] = original.seed
        source = next((a for a in original.assets.all() if a.role == "input"), None)
        if source is not None:
            initial["source_asset"] = str(source.uuid)
    if request.GET.get("source"):
        if services.source_asset_for_owner(user=request.user, uuid=_uuid_or_404(request.GET["source"])) is None:
            raise Http404("No such picture.")
        initial["source_asset"] = request.GET["source"]
    return initial


def _uuid_or_404(value: str) -> uuid_module.UUID:
    try:
        return uuid_module.UUID(value)
    except ValueError as exc:
        raise Http404("Not found.") from exc


def _source(request: HttpRequest, form: CreateForm) -> dict | None:
    """The picture already on our side that this form will use, for "using photo.png — change"."""
    if not form.needs_image():
        return None
    pending_id, asset_id = form["pending_upload"].value(), form["source_asset"].value()
    pending = pending_id and services.pending_upload_for_owner(user=request.user, uuid=pending_id)
    if pending:
        name, picture = pending.filename, pending
    else:
        asset = asset_id and services.source_asset_for_owner(user=request.user, uuid=asset_id)
        if not asset:
            return None
        name, picture = download_name(asset), asset
    return {
        "name": name,
        "url": storage.access_url(picture.storage_key, filename=name),
        "width": picture.width,
        "height": picture.height,
    }


def _keep_upload(request: HttpRequest, form: CreateForm) -> None:
    """A refused form keeps its picture: cleaned and stored as the person's pending upload, so
    the page says "using photo.png" instead of asking for the file again."""
    upload = request.FILES.get("image")
    if upload is None or not form.needs_image():
        return
    try:
        pending = services.pending_upload_keep(user=request.user, upload=upload)
    except InvalidInput as exc:
        if not form.has_error("image"):
            form.add_error("image", str(exc))
        return
    except ProviderError as exc:  # storage down: the person picks the file again
        logger.warning("could not keep an upload: %s", exc.detail)
        return
    form.data = form.data.copy()
    form.data["pending_upload"] = str(pending.uuid)
    form.data.pop("source_asset", None)


def _refused_submit(form: CreateForm, exc: ApplicationError) -> bool:
    """Show a refused submit on the form (beside its field when it has one; `form_error`) and
    say whether the picture is worth keeping for the next try: not when the refusal means "not
    now" (credits, debt) or the account is paused (no new processing, not even a kept upload)."""
    if isinstance(exc, ProviderError):  # e.g. our storage is down: nothing was charged
        logger.warning("submit failed: %s", exc.detail)
    if isinstance(exc, InsufficientCredits):
        form.add_error(
            None, format_html('{} <a href="{}">See your credits</a>.', str(exc), reverse("billing:overview"))
        )
        return False
    form_error(form, exc)
    return not isinstance(exc, AccountPaused)


@login_required
def create(request: HttpRequest) -> HttpResponse:
    tab = _tab(request)
    models = services.catalog_available().filter(kind=TABS[tab])
    status, retry_after = 200, None
    if request.method == "POST":
        form = CreateForm(request.POST, request.FILES, models=models)
        # A refusal that says "not now" (limits, credits, debt) keeps no upload: decoding and storing
        # it would be work done for free, over and over.
        keep_upload = not request.user.is_paused  # paused: no new processing, not even a kept upload
        try:
            services.generation_submit_throttle(request=request)
        except SubmitRateLimited as exc:
            form.full_clean()  # the page shows what was typed; errors need a cleaned form
            form.add_error(None, str(exc))
            status, retry_after = exc.status, exc.retry_after
            keep_upload = False
        if status == 200 and form.is_valid():
            spec = services.GenerationSpec(
                model=form.cleaned_data["model"],
                values={k: v for k, v in form.cleaned_data.items() if k not in SPEC_EXCLUDED},
                image_upload=form.cleaned_data.get("image"),
                image_url=form.cleaned_data.get("image_url") or "",
                source_asset=form.cleaned_data.get("source_asset") or "",
                pending_upload=form.cleaned_data.get("pending_upload") or "",
            )
            try:
                generation = services.generation_submit(user=request.user, spec=spec)
            except ApplicationError as exc:  # one mapping for every refusal (config.errors)
                keep_upload = _refused_submit(form, exc)
            else:
                return redirect("generation:detail", uuid=generation.uuid)
        if keep_upload:
            _keep_upload(request, form)
    else:
        form = CreateForm(initial=_prefill(request), models=models)
    context = {
        "form": form,
        "tab": tab,
        "tabs": [("image", "Image"), ("edit", "Edit"), ("3d", "3D")],
        "models": models,
        "selected": form.selected_model(),
        "source": _source(request, form),
        "cost": catalog.cost_of(form.selected_model(), {"num_outputs": form.picks["num_outputs"]})
        if form.selected_model()
        else 0,
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
    # The whole form comes along (hx-include), so what was typed survives a change of model.
    initial = {name: value for name, value in request.GET.items() if name in CreateForm.base_fields}
    form = CreateForm(initial=initial, models=models)
    context = {"form": form, "selected": form.selected_model(), "source": _source(request, form)}
    return render(request, "generation/_model_fields.html", context)


def download_name(asset: Asset) -> str:
    """`atelier-<slug of the prompt>-<short id>[-<n>].<ext>`: a name that says what the file is
    and stays unique in a downloads folder (variations get -2, -3, ...)."""
    generation = asset.generation
    words = slugify(generation.prompt)[:48].rstrip("-") or slugify(generation.get_kind_display()) or "result"
    suffix = f"-{asset.index + 1}" if asset.role == AssetRole.OUTPUT and asset.index else ""
    prefix = "input-" if asset.role == AssetRole.INPUT else ""
    ext = asset.filename.rsplit(".", 1)[-1]
    return f"atelier-{prefix}{words}-{generation.uuid.hex[:8]}{suffix}.{ext}"


def _facts(generation: Generation) -> list[tuple[str, str]]:
    """Every parameter in words, for the result page (what a remix will copy)."""
    params = generation.params or {}
    entry = generation.model
    facts = [("Model", entry.title)]
    version = generation.provider_version or entry.provider_version
    facts.append(("Model version", version or "Latest (the provider does not pin official models)"))
    if generation.seed is not None:
        facts.append(("Seed", str(generation.seed)))
    if "aspect_ratio" in params:
        ratio = params["aspect_ratio"]
        facts.append(("Aspect ratio", catalog.RATIO_LABELS.get(ratio, ratio)))
    if "style" in params:
        facts.append(("Style", catalog.STYLE_PRESETS.get(params["style"], (params["style"],))[0]))
    if "strength" in params:
        facts.append(("Strength", f"{float(params['strength']):.2f} (0 keeps the picture, 1 moves freely)"))
    if catalog.outputs_of(params) > 1:
        facts.append(("Variations", str(catalog.outputs_of(params))))
    if generation.negative_prompt:
        facts.append(("Negative prompt", generation.negative_prompt))
    facts.append(("Cost", f"{generation.cost} credit{'s' if generation.cost != 1 else ''}"))
    facts.append(("Started", date_format(timezone.localtime(generation.queued_at), "j M Y, H:i")))
    if generation.duration_seconds is not None:
        facts.append(("Duration", f"{generation.duration_seconds:.1f} s"))
    return facts


def _detail_context(request: HttpRequest, uuid) -> dict:
    generation = selectors.generation_for_owner(user=request.user, uuid=uuid)
    assets = selectors.assets_by_role(generation)
    output = assets["output"][0] if assets["output"] else None
    tab = KIND_TABS.get(generation.kind, "image")
    outputs = [
        {
            "asset": asset,
            "url": storage.access_url(asset.storage_key, filename=download_name(asset)),
            "download_name": download_name(asset),
            "is_image": not asset.is_model_3d,
        }
        for asset in assets["output"]
    ]
    return {
        "generation": generation,
        "assets": assets,
        "output": output,
        "outputs": outputs,
        "remix_url": f"{reverse('generation:create')}?tab={tab}&remix={generation.uuid}",
        "output_url": outputs[0]["url"] if outputs else None,
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
    context = _detail_context(request, uuid)
    generation = context["generation"]
    context["facts"] = _facts(generation)
    context["newer"], context["older"] = selectors.gallery_neighbours(generation)
    return render(request, "generation/detail.html", context)


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
        services.generation_submit_throttle(request=request)  # every way of starting a job counts
        new = services.generation_retry(user=request.user, generation=generation)
    except ApplicationError as exc:  # limits, state, input, provider, credits: the sentence says which
        messages.error(request, str(exc))
        return redirect("generation:detail", uuid=uuid)
    return redirect("generation:detail", uuid=new.uuid)


@login_required
@require_POST
def run_again(request: HttpRequest, uuid) -> HttpResponse:
    """Same model, prompt, parameters and input picture; a new seed."""
    generation = selectors.generation_for_owner(user=request.user, uuid=uuid)
    try:
        services.generation_submit_throttle(request=request)  # every way of starting a job counts
        new = services.generation_run_again(user=request.user, generation=generation)
    except ApplicationError as exc:
        messages.error(request, str(exc))
        return redirect("generation:detail", uuid=uuid)
    return redirect("generation:detail", uuid=new.uuid)


@login_required
@require_GET
def download(request: HttpRequest, uuid) -> HttpResponse:
    """Owner-only: a short-lived URL to one asset (presigned S3 with ResponseContentDisposition,
    or a signed local URL), saved under a name that says what it is (`download_name`)."""
    asset = selectors.asset_for_owner(user=request.user, uuid=uuid)
    return redirect(storage.access_url(asset.storage_key, filename=download_name(asset), download=True))


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
    key = data["k"]
    filename = data.get("f") or key.rsplit("/", 1)[-1]  # made safe by storage.access_url, which signed it
    # The type comes from the storage key, whose extension we chose from the file's real format;
    # never from a name a person gave their upload ("x.html").
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    if key.endswith(".glb"):
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
