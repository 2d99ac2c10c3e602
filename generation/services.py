"""Everything that changes a generation happens here.

Flow (DESIGN.md): submit validates, reserves credits and creates the job in one transaction,
then enqueues on commit; the worker starts the prediction (storing its id before waiting),
waits for a final state, copies the outputs into our storage and captures the credits — or
releases them on failure or cancel. Every status move is a guarded update
(`filter(status=old).update(...)`), so redelivered tasks, duplicate webhooks and races
between the poller and a webhook are harmless.
"""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from billing import services as billing
from billing.errors import AccountBlocked, InsufficientCredits
from billing.services.ledger import credits_reserve_in_transaction
from generation import catalog, inputs, marking, providers, storage
from generation.errors import AccountPaused, InvalidInput, NotAllowed, ProviderError, SubmitRateLimited
from generation.models import (
    ACTIVE_STATUSES,
    Asset,
    AssetRole,
    CatalogEntry,
    Generation,
    Kind,
    PendingUpload,
    ProviderWebhook,
    Source,
    Status,
)
from generation.providers import get_provider
from generation.providers.base import CANCELED, FAILED, SUCCEEDED, InputImage, Job, PredictionState
from generation.signals import deletion_requested, generation_finished

logger = logging.getLogger(__name__)

IMAGE_MIMES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
GLB_MIME = "model/gltf-binary"
THUMBNAIL_SIDE = 512


@dataclass
class GenerationSpec:
    """What a person asked for, as the view or API parsed it."""

    model: CatalogEntry
    values: dict = field(default_factory=dict)  # prompt, negative_prompt, aspect_ratio, style, seed, strength
    image_upload: UploadedFile | None = None
    image_url: str = ""
    # A picture already on our side, used without a re-upload (each checked for ownership):
    # an output or input of the person's own generation ("Edit this", "Make 3D from this", a
    # remix), or the upload kept when their last form was refused.
    source_asset: str = ""  # Asset uuid
    pending_upload: str = ""  # PendingUpload uuid
    source: str = Source.WEB  # where it was asked for (web, api, gpt_action, mcp)


# --- catalog --------------------------------------------------------------------------------------


def provider_available(provider: str) -> bool:
    return providers.provider_available(provider)


def catalog_available():
    """Enabled models whose provider is configured here."""
    names = [name for name in providers.REGISTRY if provider_available(name)]
    return CatalogEntry.objects.filter(enabled=True, provider__in=names).order_by("kind", "order", "title")


def catalog_entry_available(slug: str) -> CatalogEntry | None:
    """The model of this slug if `catalog_available` lists it, else None; without a query in
    the usual case (each process keeps the enabled entries: `catalog.enabled_entry`)."""
    entry = catalog.enabled_entry(slug)
    return entry if entry is not None and provider_available(entry.provider) else None


# --- submit -------------------------------------------------------------------------------------------


SUBMIT_RATE_GROUP = "generation.submit"


def generation_submit_throttle(*, request) -> None:
    """Count one submit for the signed-in person and one for their address; raise
    SubmitRateLimited past `GENERATION_SUBMIT_RATE_PER_USER` or `GENERATION_SUBMIT_RATE_PER_IP`.

    The one limit for every way in: the create page calls it first thing on a POST, the API
    will call it the same way. Counts live in the shared cache (django-ratelimit, fixed windows);
    while Redis is down they count per process (config/cache.py).
    """
    limits = (
        (_submit_user_key, settings.GENERATION_SUBMIT_RATE_PER_USER),
        (_submit_ip_key, settings.GENERATION_SUBMIT_RATE_PER_IP),
    )
    for usage in rate_limits_count(request, group=SUBMIT_RATE_GROUP, limits=limits):
        if usage is not None and usage["should_limit"]:
            raise SubmitRateLimited(retry_after=usage["time_left"])


def rate_limits_count(request, *, group: str, limits) -> list[dict | None]:
    """Count one call against each (key function, rate) of `limits`, as django-ratelimit's
    `get_usage(request, group=..., key=..., rate=..., increment=True)` does, and return its
    answers (`count`, `limit`, `should_limit`, `time_left`) in order.

    Same windows, same cache keys, same values as get_usage (its own helpers make them), so the
    two can count the same limit. The difference is the cost: get_usage takes three Redis round
    trips per limit (ADD, then Django's INCR: EXISTS and INCR); here every limit is one
    `SET NX EX` (what ADD does) and one INCR, all sent in one pipeline. With another cache, or
    while the fail-open cache is counting in memory (config/cache.py), each limit goes through
    get_usage as before; a connection failure mid-way does too (and starts that fallback)."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache
    from django_ratelimit import ALL
    from django_ratelimit import core as ratelimit

    from config.cache import OUTAGE

    def one_by_one() -> list[dict | None]:
        return [ratelimit.get_usage(request, group=group, key=key, rate=rate, increment=True) for key, rate in limits]

    store = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    if (
        not getattr(settings, "RATELIMIT_ENABLE", True)
        or not isinstance(store, RedisCache)
        or getattr(store, "degraded", False)
    ):
        return one_by_one()
    # django-ratelimit's window can end in the very second it is computed in, and the clock may tick
    # while Redis answers: the time left is at least 1 s, what a Retry-After needs (read once, first).
    now = int(time.time())
    counted = []
    pipeline = store._cache.get_client(write=True).pipeline(transaction=False)
    for key, rate in limits:
        limit, period = ratelimit._split_rate(rate)
        value = key(group, request)
        window = ratelimit._get_window(value, period)
        name = store.make_and_validate_key(ratelimit._make_cache_key(group, window, rate, value, ALL))
        pipeline.set(name, 0, ex=period + ratelimit.EXPIRATION_FUDGE, nx=True)
        pipeline.incr(name)
        counted.append((limit, window))
    try:
        replies = pipeline.execute()
    except OUTAGE:
        return one_by_one()
    return [
        {"count": count, "limit": limit, "should_limit": count > limit, "time_left": max(1, window - now)}
        for (limit, window), count in zip(counted, replies[1::2], strict=True)
    ]


def _submit_user_key(group: str, request) -> str:
    return f"user:{request.user.pk}"


def _submit_ip_key(group: str, request) -> str:
    """The client address (config.net.client_ip, which knows our proxies); IPv6 by /64."""
    from config.net import address_key, client_ip

    return address_key(client_ip(request))


NEEDS_ONE_IMAGE = "Upload an image or paste an image link: one of them is needed."
SOURCE_GONE = "That picture is no longer available. Upload it again or paste a link."


def _clean_input_image(user, spec: GenerationSpec) -> inputs.CleanImage | None:
    """The input picture, cleaned. A new upload or link wins over a picture already on our side
    (that is what "change" means on the page)."""
    needs_image = spec.model.kind in catalog.KIND_NEEDS_IMAGE
    if not needs_image:
        return None
    if spec.image_upload is not None and spec.image_url:
        raise InvalidInput("Give either an upload or an image link, not both.", field="image")
    if spec.image_upload is not None:
        return inputs.image_from_upload(spec.image_upload)
    if spec.image_url:
        return _image_from_url_one_at_a_time(user, spec.image_url)
    if spec.pending_upload:
        pending = pending_upload_for_owner(user=user, uuid=spec.pending_upload)
        if pending is None:
            raise InvalidInput(SOURCE_GONE, field="image")
        return inputs.clean_image_bytes(storage.read_bytes(pending.storage_key))
    if spec.source_asset:
        asset = source_asset_for_owner(user=user, uuid=spec.source_asset)
        if asset is None:
            raise InvalidInput(SOURCE_GONE, field="image")
        return inputs.clean_image_bytes(storage.read_bytes(asset.storage_key))
    raise InvalidInput(NEEDS_ONE_IMAGE, field="image")


LINK_BUSY = "Another image link of yours is still being fetched. Try again in a few seconds."


def _image_from_url_one_at_a_time(user, url: str) -> inputs.CleanImage:
    """Fetch a link, one fetch per person at a time: a fetch holds a web worker for up to
    INPUT_URL_DEADLINE, so parallel submits of slow links would hold them all. The flag lives in the
    shared cache (while Redis is down, in each process's memory: per process)."""
    key = f"generation:link-fetch:{user.pk}"
    if not cache.add(key, 1, timeout=int(inputs.fetch_deadline()) + 5):
        raise InvalidInput(LINK_BUSY, field="image_url")
    try:
        return inputs.image_from_url(url)
    finally:
        cache.delete(key)


def source_asset_for_owner(*, user, uuid) -> Asset | None:
    """One of the person's own pictures (an input or an image output, never a 3D file) that can
    become the input of a new job, or None (someone else's, a GLB, gone, not a uuid)."""
    try:
        return (
            Asset.objects.select_related("generation")
            .filter(uuid=uuid, generation__owner=user, role__in=[AssetRole.OUTPUT, AssetRole.INPUT])
            .exclude(mime_type=GLB_MIME)
            .first()
        )
    except (ValueError, TypeError, ValidationError):
        return None


def pending_upload_for_owner(*, user, uuid) -> PendingUpload | None:
    try:
        return PendingUpload.objects.filter(uuid=uuid, owner=user).first()
    except (ValueError, TypeError, ValidationError):
        return None


def pending_upload_keep(*, user, upload: UploadedFile) -> PendingUpload:
    """Keep a picture from a refused create form, cleaned as any input is (InvalidInput when it
    is not a usable image), so the next submit can use it without picking the file again."""
    image = inputs.image_from_upload(upload)
    # One kept upload per person: the new one replaces any earlier (a page shows one form at a time),
    # so refused forms can't pile up stored pictures.
    pending_uploads_sweep(user=user, older_than_seconds=0)
    pending = PendingUpload(owner=user, filename=(upload.name or "picture")[-200:], mime_type=image.mime)
    saved = storage.save_bytes(f"users/{user.public_id}/pending/{pending.uuid}.{image.ext}", image.content)
    pending.storage_key, pending.bytes = saved.key, saved.size
    pending.width, pending.height = image.width, image.height
    try:
        pending.save()
    except BaseException:
        storage.delete_keys([saved.key])
        raise
    return pending


PENDING_UPLOAD_MAX_AGE = 24 * 3600  # seconds a kept upload waits for its second try


def pending_uploads_sweep(*, older_than_seconds: float = PENDING_UPLOAD_MAX_AGE, user=None) -> int:
    """Delete kept uploads older than `older_than_seconds` (one person's with `user`; 0 for all
    of theirs, e.g. when their history is deleted): objects first, then rows.

    Run for the person each time a new upload is kept and by `tasks.sweep_pending_uploads`; a
    kept upload used by a submit is deleted then (the job has its own copy)."""
    rows = PendingUpload.objects.filter(created_at__lte=timezone.now() - timezone.timedelta(seconds=older_than_seconds))
    if user is not None:
        rows = rows.filter(owner=user)
    return _pending_uploads_delete(rows)


def _pending_uploads_delete(rows) -> int:
    doomed = list(rows.values_list("pk", "storage_key"))
    storage.delete_keys([key for _, key in doomed])
    return PendingUpload.objects.filter(pk__in=[pk for pk, _ in doomed]).delete()[0]


def generation_submit(*, user, spec: GenerationSpec, retry_of: Generation | None = None) -> Generation:
    """Validate, charge and queue one generation. Raises InvalidInput or InsufficientCredits,
    in which case nothing was charged, created or stored."""
    entry = spec.model
    _check_usable(user, entry)
    clean = catalog.clean_params(entry, spec.values)
    _pick_seed(entry, clean.params)
    cost = catalog.cost_of(entry, clean.params)
    if entry.kind in catalog.KIND_NEEDS_IMAGE:
        # Before any download or decode. Without an input picture there is nothing to protect:
        # the reservation refuses the same way (same errors) a moment later, one query sooner.
        _check_credits(user, cost)
    image = _clean_input_image(user, spec)  # network/decoding happens before we touch the database
    generation = _create(
        user=user, entry=entry, clean=clean, cost=cost, image=image, retry_of=retry_of, source=spec.source
    )
    if spec.pending_upload and image is not None and spec.image_upload is None and not spec.image_url:
        _pending_uploads_delete(PendingUpload.objects.filter(owner=user, uuid=spec.pending_upload))  # now copied
    return generation


def _pick_seed(entry: CatalogEntry, params: dict) -> None:
    """Every job of a model that takes a seed runs with one we know: the person's, or one we pick
    and send, so the result page can show it and a remix can reproduce the picture."""
    if catalog.accepts(entry, "seed") and params.get("seed") is None:
        params["seed"] = secrets.randbelow(2**31)


def _check_usable(user, entry: CatalogEntry) -> None:
    """The person has not paused their account, the model is on, its provider configured here,
    and (for Pro-only models) the person is Pro. Submit, retry and run again all pass here."""
    if user.is_paused:
        raise AccountPaused()
    if not user.has_accepted_terms:  # a newer privacy policy waits for acceptance (privacy.policy)
        raise InvalidInput("Our privacy policy has changed. Accept the new version (see the notice above) to generate.")
    if not entry.enabled or not provider_available(entry.provider):
        raise InvalidInput("This model is not available right now. Pick another one.", field="model")
    _check_pro(user, entry)


def _previous_input(generation: Generation) -> inputs.CleanImage | None:
    """A generation's stored input picture, cleaned again, for a job made from it (retry, run again).
    An edit or 3D job whose input was purged by retention (privacy) cannot be made again."""
    source = generation.assets.filter(role=AssetRole.INPUT).first()
    if source is None and generation.kind != Kind.TEXT_TO_IMAGE:
        raise InvalidInput(
            f"The input picture of this job was removed {settings.PRIVACY_RETENTION_INPUTS_DAYS} days after it "
            "finished. Start a new one with a picture."
        )
    return inputs.clean_image_bytes(storage.read_bytes(source.storage_key)) if source is not None else None


def _check_pro(user, entry: CatalogEntry) -> None:
    from billing.selectors import is_pro

    if entry.pro_only and not is_pro(user=user):
        raise InvalidInput("This model is part of Pro. Subscribe to Pro or pick another model.", field="model")


def _check_credits(user, cost: int) -> None:
    """Refuse early, read-only, what the reservation would refuse: an open debt (AccountBlocked)
    or too few credits (InsufficientCredits), with the same errors and sentences.

    This runs before an image link is fetched or an upload decoded, so people without credits
    cannot make us download or decode anything. It takes no lock and holds nothing:
    `credits_reserve` in `_create` stays the authority (a parallel spend between the two is
    refused there, with the row lock).
    """
    from billing.selectors import wallet_of

    wallet = wallet_of(user=user)
    balance, debt = (wallet.balance, wallet.debt) if wallet is not None else (0, 0)
    if debt > 0:
        raise AccountBlocked(debt=debt)
    if balance < cost:
        raise InsufficientCredits(needed=cost, balance=balance)


def _create(
    *, user, entry: CatalogEntry, clean: catalog.CleanParams, cost: int, image, retry_of, source: str = Source.WEB
) -> Generation:
    if image is not None:
        get_provider(entry.provider).check_input_image(image)  # InvalidInput here, never in the worker
    stored: list[str] = []
    try:
        generation = Generation(
            owner=user,
            model=entry,
            kind=entry.kind,
            prompt=clean.prompt,
            negative_prompt=clean.negative_prompt,
            params=clean.params,
            seed=clean.params.get("seed"),
            # The catalog's pinned version; the worker replaces it with the one the provider reports.
            provider_version=entry.provider_version,
            cost=cost,
            retry_of=retry_of,
            source=source,
        )
        saved = None
        if image is not None:
            # Uploaded before the transaction: the wallet's row lock is never held across storage I/O.
            saved = storage.save_bytes(f"{generation.storage_prefix}/input-0.{image.ext}", image.content)
            stored.append(saved.key)
        with transaction.atomic():
            # The job's rows first, the wallet last: the wallet's row lock is held from the
            # reservation to the commit, so every statement before it is one a parallel submit of
            # the same person does not wait for. A refusal rolls all of it back.
            generation.save()
            if saved is not None:
                Asset.objects.create(
                    generation=generation,
                    role=AssetRole.INPUT,
                    storage_key=saved.key,
                    mime_type=image.mime,
                    bytes=saved.size,
                    sha256=saved.sha256,
                    width=image.width,
                    height=image.height,
                )
            credits_reserve_in_transaction(  # part of this transaction: no savepoint of its own
                user=user,
                amount=cost,
                reference=generation.reservation_reference,
                memo=f"{entry.get_kind_display()} · {entry.title}",
                new_reference=True,  # the generation's uuid, unique, inserted just above
            )
            transaction.on_commit(lambda: _enqueue(generation.pk))
    except BaseException:
        storage.delete_keys(stored)  # the transaction rolled back: leave no orphan files
        raise
    return generation


def _enqueue(generation_id: int) -> None:
    """Queue the job after commit. If the broker is down the job is failed and refunded at once,
    rather than left queued with the credits held (and the request still ends normally)."""
    from generation.tasks import run_generation

    try:
        run_generation.delay(generation_id)
    except Exception as exc:
        logger.exception("could not queue generation %s", generation_id)
        generation_fail(
            generation_id=generation_id,
            message="We could not start this job right now. Your credits were refunded; please try again.",
            detail=f"enqueue failed: {exc!r}",
            cancel_remote=False,
        )


def generation_retry(*, user, generation: Generation) -> Generation:
    """Try a failed or canceled generation again, as a new job with the same inputs.

    Once per job, enforced by the database (a unique index on `retry_of`): a double click, or
    twenty parallel POSTs, create and charge one retry, and every caller gets that retry back.
    """
    if generation.owner_id != user.pk:
        raise NotAllowed("Not your generation.")
    if generation.status not in (Status.FAILED, Status.CANCELED):
        raise NotAllowed("Only a failed or canceled generation can be tried again.")
    _check_prompt_kept(generation)
    existing = _existing_retry(generation)
    if existing is not None:
        return existing
    clean = catalog.CleanParams(
        prompt=generation.prompt, negative_prompt=generation.negative_prompt, params=dict(generation.params)
    )
    entry = generation.model
    _check_usable(user, entry)
    try:
        cost = catalog.cost_of(entry, clean.params)
        _check_credits(user, cost)
        return _create(
            user=user, entry=entry, clean=clean, cost=cost, image=_previous_input(generation), retry_of=generation
        )
    except (IntegrityError, InsufficientCredits):
        # A parallel click won the race: either for the unique `retry_of` (migration 0004; ours
        # rolled back with its reservation) or for the last credits. The person is charged once
        # and every click lands on the one retry.
        existing = _existing_retry(generation)
        if existing is None:
            raise
        return existing


def generation_run_again(*, user, generation: Generation) -> Generation:
    """ "Run again": a new job with the same model, prompt, parameters and input picture, and a
    new seed (so a new picture). Charged like any submit."""
    if generation.owner_id != user.pk:
        raise NotAllowed("Not your generation.")
    _check_prompt_kept(generation)
    entry = generation.model
    _check_usable(user, entry)
    params = {name: value for name, value in (generation.params or {}).items() if name != "seed"}
    _pick_seed(entry, params)
    clean = catalog.CleanParams(prompt=generation.prompt, negative_prompt=generation.negative_prompt, params=params)
    cost = catalog.cost_of(entry, params)
    _check_credits(user, cost)
    return _create(user=user, entry=entry, clean=clean, cost=cost, image=_previous_input(generation), retry_of=None)


def _check_prompt_kept(generation: Generation) -> None:
    """A job whose prompt and parameters were removed by the assistant retention (privacy) cannot be
    made again from its row: that would start, and charge, a job with an empty prompt."""
    if generation.prompt_purged_at is not None:
        raise InvalidInput(
            "The prompt of this job was removed, as promised for jobs asked for from an assistant. "
            "Start a new one with a prompt."
        )


def _existing_retry(generation: Generation) -> Generation | None:
    return Generation.objects.filter(retry_of=generation).order_by("pk").first()


# --- status moves -------------------------------------------------------------------------------------


def _move(generation_id: int, *, from_statuses, **changes) -> bool:
    """Guarded status update: only applies if the job is still in one of `from_statuses`."""
    return bool(Generation.objects.filter(pk=generation_id, status__in=from_statuses).update(**changes))


def generation_fail(*, generation_id: int, message: str, detail: str = "", cancel_remote: bool = True) -> bool:
    """Fail a job that is not final yet and give the credits back. True if this call failed it.

    With `cancel_remote` a prediction still running at the provider is told to stop (we would
    pay for a result nobody gets); the provider's own final states pass False.
    """
    with transaction.atomic():
        moved = _move(
            generation_id,
            from_statuses=ACTIVE_STATUSES,
            status=Status.FAILED,
            error_message=message[:300],
            error_detail=detail,
            finished_at=timezone.now(),
        )
        if moved:
            reference, prediction_id, provider = Generation.objects.values_list(
                "uuid", "provider_prediction_id", "model__provider"
            ).get(pk=generation_id)
            billing.credits_release(reference=f"generation:{reference}")
            transaction.on_commit(
                lambda: generation_finished.send(sender=Generation, generation_id=generation_id, status=Status.FAILED)
            )
            if cancel_remote and prediction_id and get_provider(provider).can_cancel:
                transaction.on_commit(lambda: _enqueue_provider_cancel(generation_id, provider, prediction_id))
    if moved:
        logger.info("generation %s failed: %s (%s)", generation_id, message, detail)
    return moved


def generation_cancel(*, user, generation: Generation) -> bool:
    """Cancel a queued or running job: credits come back, the provider is told to stop."""
    if generation.owner_id != user.pk:
        raise NotAllowed("Not your generation.")
    with transaction.atomic():
        moved = _move(
            generation.pk,
            from_statuses=ACTIVE_STATUSES,
            status=Status.CANCELED,
            error_message="Canceled.",
            finished_at=timezone.now(),
        )
        if not moved:
            raise NotAllowed("This generation has already finished.")
        billing.credits_release(reference=generation.reservation_reference)
        prediction_id = Generation.objects.values_list("provider_prediction_id", flat=True).get(pk=generation.pk)
        provider_name = generation.model.provider
        if prediction_id and get_provider(provider_name).can_cancel:
            # Names captured now: the row may be deleted (gallery delete) before this runs.
            transaction.on_commit(lambda: _enqueue_provider_cancel(generation.pk, provider_name, prediction_id))
    return True


def _enqueue_provider_cancel(generation_id: int, provider_name: str, prediction_id: str) -> None:
    """Queue the provider-side cancel, naming the provider and prediction: the row may be deleted
    before the task runs (deleting a running job from the gallery), and the prediction must be
    stopped all the same (it costs money while it runs)."""
    from generation.tasks import cancel_prediction

    try:
        cancel_prediction.delay(generation_id, provider=provider_name, prediction_id=prediction_id)
    except Exception:
        logger.exception("could not queue the provider cancel of generation %s", generation_id)


def provider_cancel(*, generation_id: int, provider: str = "", prediction_id: str = "") -> None:
    """Stop a prediction at its provider (where the provider can). With `provider` and
    `prediction_id` the generation row is not needed (it may be gone)."""
    if not (provider and prediction_id):
        found = (
            Generation.objects.filter(pk=generation_id).values_list("model__provider", "provider_prediction_id").first()
        )
        if found is None:
            return
        provider, prediction_id = found
    backend = get_provider(provider)
    if prediction_id and backend.can_cancel:
        backend.cancel(prediction_id)


# --- running (called by the worker) ------------------------------------------------------------------


def _job(generation: Generation, provider) -> Job:
    """The provider-neutral description of a generation, for `provider.build_request`."""
    source = generation.assets.filter(role=AssetRole.INPUT).first()
    image = None
    if source is not None:
        key = source.storage_key
        image = InputImage(
            key=key,
            mime=source.mime_type,
            width=source.width,
            height=source.height,
            read=lambda: storage.read_bytes(key),
        )
    return Job(
        entry=generation.model,
        prompt=generation.prompt,
        negative_prompt=generation.negative_prompt,
        params=dict(generation.params or {}),
        seed=int(generation.seed if generation.seed is not None else (generation.params or {}).get("seed") or 0),
        input_image=image,
        webhook_url=provider.webhook_url(),
    )


def generation_run(*, generation_id: int, wait: float | None = None) -> None:
    """The worker's job: start (once) or resume, wait a while for the result, then finish.

    Raises ProviderError(retryable=True) for the task to retry with backoff.
    """
    generation = Generation.objects.select_related("model", "owner").get(pk=generation_id)
    if generation.is_final:
        return
    if generation.status == Status.QUEUED:
        _move(generation.pk, from_statuses=[Status.QUEUED], status=Status.RUNNING, started_at=timezone.now())
    Generation.objects.filter(pk=generation.pk).update(attempts=F("attempts") + 1)
    generation.refresh_from_db()
    if generation.status != Status.RUNNING:
        return  # canceled meanwhile
    provider = get_provider(generation.model.provider)

    if not generation.provider_prediction_id:
        state = provider.start(provider.build_request(_job(generation, provider)))
        # Store the id before waiting: a redelivered task resumes this prediction, never starts another.
        kept = Generation.objects.filter(pk=generation.pk, provider_prediction_id="").update(
            provider_prediction_id=state.id, **({"provider_version": state.version} if state.version else {})
        )
        if not kept:
            # Another delivery of this task got its prediction stored first: stop ours, follow theirs.
            if provider.can_cancel:
                try:
                    provider.cancel(state.id)
                except ProviderError as exc:
                    logger.warning("could not cancel duplicate prediction %s: %s", state.id, exc.detail)
            state = provider.fetch(
                Generation.objects.values_list("provider_prediction_id", flat=True).get(pk=generation.pk)
            )
        if not Generation.objects.filter(pk=generation.pk, status=Status.RUNNING).exists():
            # Canceled while the prediction was being created: stop it at the provider too.
            if provider.can_cancel:
                _enqueue_provider_cancel(generation.pk, generation.model.provider, state.id)
            return
    else:
        state = provider.fetch(generation.provider_prediction_id)

    if wait is None:
        # With webhooks the worker hands off at once (the webhook, or the beat poller as the
        # fallback, finishes the job) instead of holding a worker slot while a 3D model renders.
        webhooks = provider.supports_webhooks
        wait = settings.GENERATION_WEBHOOK_INLINE_WAIT if webhooks else settings.GENERATION_INLINE_WAIT
    deadline = time.monotonic() + wait
    running_since = time.monotonic() - (timezone.now() - (generation.started_at or timezone.now())).total_seconds()
    while not state.is_terminal:
        if time.monotonic() >= deadline:
            Generation.objects.filter(pk=generation.pk).update(last_polled_at=timezone.now())
            return  # hand off: the webhook or the beat poller finishes it
        time.sleep(_poll_interval(time.monotonic() - running_since))
        # Marking the poll keeps the beat poller off jobs a worker is already watching.
        if not Generation.objects.filter(pk=generation.pk, status=Status.RUNNING).update(last_polled_at=timezone.now()):
            return  # canceled or finished by a webhook meanwhile
        state = provider.fetch(state.id)
    generation_apply_state(generation_id=generation.pk, state=state)


# Between polls the worker waits a tenth of the time the job has run so far (within
# GENERATION_POLL_INTERVAL .. GENERATION_POLL_MAX_INTERVAL): a result is noticed at most ~10 %
# after it is ready (0.1 s late for a 1 s image), while a long 3D job costs about one read a second.
POLL_FRACTION = 0.1


def _poll_interval(elapsed: float) -> float:
    return min(max(settings.GENERATION_POLL_INTERVAL, elapsed * POLL_FRACTION), settings.GENERATION_POLL_MAX_INTERVAL)


def generation_apply_state(*, generation_id: int, state: PredictionState) -> None:
    """Act on a terminal provider state (from the worker, the poller or a webhook)."""
    if not state.is_terminal:
        Generation.objects.filter(pk=generation_id, status=Status.RUNNING).update(last_polled_at=timezone.now())
        return
    if state.status == SUCCEEDED:
        _finish_success(generation_id=generation_id, state=state)
    elif state.status == FAILED:
        generation_fail(
            generation_id=generation_id,
            message="The model could not make this one. Your credits were refunded; try another prompt or image.",
            detail=state.error or "provider reported failed",
            cancel_remote=False,
        )
    elif state.status == CANCELED:
        generation_fail(
            generation_id=generation_id,
            message="The provider stopped this job. Your credits were refunded.",
            detail=state.error or "provider reported canceled/aborted",
            cancel_remote=False,
        )


NO_OUTPUT = "The model finished without a result, so there is nothing to keep. Your credits were refunded."
NO_MODEL_FILE = (
    "The model finished without a 3D model file (only previews), so there is nothing to keep. "
    "Your credits were refunded."
)
SAVE_FAILED = "Something went wrong on our side while saving the result. Your credits were refunded."


def _finish_success(*, generation_id: int, state: PredictionState) -> None:
    """Copy every output into our storage, then record the assets and capture the credits.

    The copy (streamed, possibly large and slow) happens without a lock or an open transaction;
    only the short bookkeeping at the end locks the row. The job is visible as done as soon as
    its outputs are stored: the thumbnail is made after, in a step of its own. If another finisher
    (webhook vs poller) or a cancel got there first, this one deletes what it copied and leaves
    the job alone.

    The prediction has finished at the provider, so nothing that goes wrong here sends a cancel:
    errors fail the job with `cancel_remote=False`, and a retryable error is marked
    `prediction_finished` for the task's give-up path.
    """
    generation = Generation.objects.select_related("owner", "model").filter(pk=generation_id).first()
    if generation is None or generation.status != Status.RUNNING:
        return  # already finished, failed or canceled
    stored: list[str] = []
    finished = False
    try:
        if not state.outputs:
            message = NO_MODEL_FILE if generation.kind == Kind.IMAGE_TO_3D else NO_OUTPUT
            raise ProviderError(message, detail=state.error or "succeeded without output")
        provider = get_provider(generation.model.provider)
        outputs = state.outputs[:1] if generation.kind == Kind.IMAGE_TO_3D else state.outputs[:4]
        copied = [_copy_output(generation, provider, ref, index, stored) for index, ref in enumerate(outputs)]
        assets, preview_source = [asset for asset, _ in copied], copied[0][1]
        # Asked for n variations and got fewer (e.g. the provider dropped some): pay for those delivered.
        asked = (
            1 if generation.kind == Kind.IMAGE_TO_3D else max(1, int((generation.params or {}).get("num_outputs") or 1))
        )
        keep = generation.cost * len(outputs) // asked if len(outputs) < asked else generation.cost
        with transaction.atomic():
            locked = Generation.objects.select_for_update().filter(pk=generation_id, status=Status.RUNNING).first()
            if locked is None:
                raise _LostRace()
            Asset.objects.bulk_create(assets)
            _move(
                generation.pk,
                from_statuses=[Status.RUNNING],
                status=Status.SUCCEEDED,
                finished_at=timezone.now(),
                error_message="",
                cost=keep,
            )
            if not billing.credits_capture(reference=generation.reservation_reference, keep=keep):
                logger.error("generation %s succeeded but its credits were not reserved any more", generation.pk)
            transaction.on_commit(
                lambda: generation_finished.send(
                    sender=Generation, generation_id=generation.pk, status=Status.SUCCEEDED
                )
            )
        finished = True
    except _LostRace:
        _discard(stored)  # someone else finished or canceled it meanwhile
    except ProviderError as exc:
        _discard(stored)
        if exc.retryable:
            exc.prediction_finished = True  # giving up later must not cancel a finished prediction
            raise
        generation_fail(generation_id=generation_id, message=str(exc), detail=exc.detail, cancel_remote=False)
    except SoftTimeLimitExceeded:
        _discard(stored)
        raise  # the task hands the job to the poller, which copies it again
    except Exception as exc:
        _discard(stored)
        logger.exception("generation %s: saving the result failed", generation_id)
        generation_fail(generation_id=generation_id, message=SAVE_FAILED, detail=repr(exc)[:2000], cancel_remote=False)
    except BaseException:
        _discard(stored)
        raise
    if finished:
        _thumbnail_now_or_later(generation.pk, preview_source)


class _LostRace(Exception):
    pass


def _discard(keys: list[str]) -> None:
    """Delete what this attempt copied, except objects a recorded asset points to: with
    S3 both finishers of a race write the same key, and the winner's copy must stay."""
    kept = set(Asset.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
    storage.delete_keys([key for key in keys if key not in kept])


def _copy_output(generation: Generation, provider, ref, index: int, stored: list[str]) -> tuple[Asset, bytes | None]:
    """Stream one output into storage; returns its unsaved Asset row, and for the first image
    its bytes when small enough to make the thumbnail from without reading it back.

    What the file is comes from its first bytes (the provider's word is not trusted); the rest
    streams on into storage.
    """
    chunks = storage.Peek(provider.open_output(ref), head_bytes=IDENTIFY_BYTES)
    mime, ext, width, height = _identify(generation.kind, chunks.head, chunks.complete)
    key = f"{generation.storage_prefix}/output-{index}.{ext}"
    stored.append(key)  # a half-written object is cleaned up too
    kept = bytearray() if index == 0 and mime != GLB_MIME else None
    # Marked as AI-generated on the way in (generation.marking): chunks inserted, nothing re-encoded.
    marked = marking.mark_stream(
        chunks,
        mime=mime,
        model=generation.model.title,
        version=generation.provider_version,
        width=width or 0,
        height=height or 0,
    )
    if marking.c2pa_enabled(mime):  # a signed C2PA manifest too, where a certificate is configured
        marked = marking.c2pa_stream(
            marked,
            mime=mime,
            model=generation.model.title,
            version=generation.provider_version,
            title=key.rsplit("/", 1)[-1],
        )

    def keeping() -> Iterator[bytes]:
        try:
            yield from keep(marked)
        except marking.MarkingError as exc:
            raise ProviderError("The model returned a file we could not read.", detail=f"marking: {exc}") from exc

    def keep(stream) -> Iterator[bytes]:
        nonlocal kept
        for chunk in stream:
            if kept is not None and len(kept) + len(chunk) <= PREVIEW_SOURCE_MAX_BYTES:
                kept += chunk
            else:
                kept = None
            yield chunk

    saved = storage.save_stream(key, keeping(), max_bytes=settings.OUTPUT_MAX_BYTES)
    if saved.key != key:
        stored.append(saved.key)
    return Asset(
        generation=generation,
        role=AssetRole.OUTPUT,
        index=index,
        storage_key=saved.key,
        mime_type=mime,
        bytes=saved.size,
        sha256=saved.sha256,
        width=width,
        height=height,
    ), (bytes(kept) if kept is not None else None)


# Enough of the file for Pillow to read an image's header (dimensions) even behind large metadata.
IDENTIFY_BYTES = 1024 * 1024


def _identify(kind: str, head: bytes, complete: bool) -> tuple[str, str, int | None, int | None]:
    """What the output really is, from its first bytes; refuse anything unexpected for the kind."""
    if not head:
        raise ProviderError("The provider returned an empty result.", detail="empty output")
    if kind == Kind.IMAGE_TO_3D:
        if head[:4] == b"glTF":
            return GLB_MIME, "glb", None, None
        raise ProviderError("The model returned something that is not a 3D model.", detail=f"head={head[:8]!r}")
    try:
        with Image.open(io.BytesIO(head)) as image:
            fmt = image.format
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        detail = repr(exc) if complete else f"{exc!r} within the first {len(head)} bytes"
        raise ProviderError("The model returned something that is not an image.", detail=detail) from exc
    if fmt not in IMAGE_MIMES:
        raise ProviderError("The model returned an image format we don't keep.", detail=f"format={fmt}")
    return IMAGE_MIMES[fmt], {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[fmt], width, height


# --- thumbnails (after the job is done) -------------------------------------------------------------


# Images up to this size are kept in memory while they stream, for the thumbnail.
PREVIEW_SOURCE_MAX_BYTES = 32 * 1024 * 1024


def _thumbnail_now_or_later(generation_id: int, source: bytes | None) -> None:
    """After the job is visible: its thumbnail from the bytes just copied, or, when they were
    not kept (large files; a 3D model's poster comes from its input), by a task of its own."""
    if source is None:
        _enqueue_thumbnail(generation_id)
        return
    try:
        generation_thumbnail(generation_id=generation_id, source=source)
    except Exception:  # the result is delivered already; the task tries the preview again
        logger.exception("thumbnail of generation %s failed; queued to try again", generation_id)
        _enqueue_thumbnail(generation_id)


def _enqueue_thumbnail(generation_id: int) -> None:
    from generation.tasks import make_thumbnail

    try:
        make_thumbnail.delay(generation_id)
    except Exception:
        logger.exception("could not queue the thumbnail of generation %s", generation_id)


def generation_thumbnail(*, generation_id: int, source: bytes | None = None) -> bool:
    """Make the small WebP preview of a finished job (from the output image, or for a 3D model
    from its input picture; `source` is the first output's bytes when the caller has them).
    Idempotent; True if this call added it."""
    generation = Generation.objects.select_related("owner", "model").filter(pk=generation_id).first()
    if generation is None or generation.status != Status.SUCCEEDED:
        return False
    assets = {(a.role, a.index): a for a in generation.assets.filter(role__in=[AssetRole.OUTPUT, AssetRole.INPUT])}
    if generation.assets.filter(role=AssetRole.THUMBNAIL).exists():
        return False
    output = assets.get((AssetRole.OUTPUT, 0))
    is_image = output is not None and output.mime_type != GLB_MIME
    picture = output if is_image else assets.get((AssetRole.INPUT, 0))
    if picture is None:
        return False
    source_bytes = source if is_image else None
    thumb = _thumbnail(
        source_bytes if source_bytes is not None else storage.read_bytes(picture.storage_key),
        xmp=marking.xmp_packet(model=generation.model.title, version=generation.provider_version),
    )
    if thumb is None:
        return False
    saved = storage.save_bytes(f"{generation.storage_prefix}/thumb-0.webp", thumb[0])
    with transaction.atomic():
        alive = Generation.objects.select_for_update().filter(pk=generation_id, status=Status.SUCCEEDED).first()
        if alive is None or alive.assets.filter(role=AssetRole.THUMBNAIL).exists():
            storage.delete_keys([saved.key])  # deleted meanwhile, or another delivery made it first
            return False
        Asset.objects.create(
            generation=alive,
            role=AssetRole.THUMBNAIL,
            storage_key=saved.key,
            mime_type="image/webp",
            bytes=saved.size,
            sha256=saved.sha256,
            width=thumb[1],
            height=thumb[2],
        )
    return True


def _thumbnail(content: bytes, *, xmp: bytes = b"") -> tuple[bytes, int, int] | None:
    try:
        with Image.open(io.BytesIO(content)) as image:
            image = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            out = io.BytesIO()
            image.save(out, format="WEBP", quality=82, xmp=xmp)  # the preview is marked too
            return out.getvalue(), image.width, image.height
    except (UnidentifiedImageError, OSError) as exc:
        logger.warning("thumbnail failed: %r", exc)
        return None


# --- webhooks and housekeeping -------------------------------------------------------------------------


def webhook_record(*, provider: str, webhook_id: str, prediction_id: str) -> Generation | None:
    """Remember a verified delivery. Returns the generation to update, or None when this
    delivery was seen before. Raises Generation.DoesNotExist for an unknown prediction."""
    generation = Generation.objects.get(provider_prediction_id=prediction_id, model__provider=provider)
    _, created = ProviderWebhook.objects.get_or_create(
        provider=provider, webhook_id=webhook_id, defaults={"prediction_id": prediction_id}
    )
    return generation if created else None


def generation_sync(*, generation_id: int) -> None:
    """Ask the provider where a running job stands and act on it (poller, webhook)."""
    generation = Generation.objects.select_related("model").get(pk=generation_id)
    if generation.status != Status.RUNNING:
        return
    if not generation.provider_prediction_id:
        return  # not started yet; the run task owns it
    state = get_provider(generation.model.provider).fetch(generation.provider_prediction_id)
    generation_apply_state(generation_id=generation.pk, state=state)


def generations_needing_poll(*, older_than_seconds: float = 30.0):
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    return (
        Generation.objects.filter(status=Status.RUNNING)
        .exclude(provider_prediction_id="")
        .filter(Q(last_polled_at__isnull=True, started_at__lt=cutoff) | Q(last_polled_at__lt=cutoff))
        .values_list("pk", flat=True)
    )


def generations_fail_stuck() -> int:
    """Fail and refund jobs stuck past the deadline (lost tasks, silent providers)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.GENERATION_STUCK_AFTER)
    count = 0
    for pk in Generation.objects.filter(status__in=ACTIVE_STATUSES, queued_at__lt=cutoff).values_list("pk", flat=True):
        count += generation_fail(
            generation_id=pk,
            message="This took far longer than it should, so we stopped it. Your credits were refunded.",
            detail="stuck past GENERATION_STUCK_AFTER",
        )
    return count


def generation_staff_refund(*, generation: Generation, memo: str) -> bool:
    """Staff action: give back the credits of a succeeded generation (e.g. a bad result).

    Only finished jobs: refunding a running one would let its result be captured for free;
    failed and canceled jobs were refunded already.
    """
    if Generation.objects.filter(pk=generation.pk).values_list("status", flat=True).first() != Status.SUCCEEDED:
        return False
    return billing.credits_release(reference=generation.reservation_reference, include_captured=True, memo=memo)


# --- gallery: favourites and deleting history -------------------------------------------------------

DELETE_BATCH = 200  # generations per step of a history deletion: bounded memory and transactions


def generation_favorite_set(*, user, generation: Generation, favorite: bool) -> bool:
    """Star or unstar one of the person's generations. Setting (not toggling) makes a repeated
    click or a resent form harmless. True if the row changed."""
    if generation.owner_id != user.pk:
        raise NotAllowed("Not your generation.")
    rows = Generation.objects.filter(pk=generation.pk, owner=user).exclude(favorite=favorite)
    changed = rows.update(favorite=favorite)
    generation.favorite = favorite
    return bool(changed)


def _gallery_hide(*, user, ids=(), until=None) -> None:
    """Mark what a deletion task is about to remove, so the gallery (and previous/next) stop
    showing it at once, while the task waits for a worker. A database mark: two requests in a row
    each add theirs, and nothing reappears if the cache is down."""
    pending = Generation.objects.filter(owner=user, deleting_at__isnull=True)
    if ids:
        pending.filter(pk__in=ids).update(deleting_at=timezone.now())
    if until is not None:
        pending.filter(queued_at__lte=until).update(deleting_at=timezone.now())


def generations_delete_request(*, user, ids: list[int]) -> int:
    """Queue the deletion of some of the person's generations (ids already checked as theirs by
    the view's selector; checked again by the task). They disappear from the gallery now."""
    ids = list(Generation.objects.filter(owner=user, pk__in=ids).values_list("pk", flat=True))
    if not ids:
        return 0
    _gallery_hide(user=user, ids=ids)
    transaction.on_commit(lambda: _enqueue_delete(user.pk, ids=ids))
    deletion_requested.send(sender=Generation, user=user, count=len(ids), whole_history=False)
    return len(ids)


def generation_history_delete_request(*, user) -> None:
    """Queue the deletion of everything the person made up to now; later jobs are kept."""
    until = timezone.now()
    count = Generation.objects.filter(owner=user, queued_at__lte=until).count()
    _gallery_hide(user=user, until=until)
    transaction.on_commit(lambda: _enqueue_delete(user.pk, until=until))
    deletion_requested.send(sender=Generation, user=user, count=count, whole_history=True)


def _enqueue_delete(user_id: int, *, ids: list[int] | None = None, until=None) -> None:
    from generation.tasks import delete_generations, delete_history

    if until is not None:
        delete_history.delay(user_id, until.isoformat())
    else:
        delete_generations.delay(user_id, ids)


def generations_delete(*, user, ids) -> int:
    """Delete some of the person's generations for good; returns how many rows went.

    Order matters (DESIGN.md, "delete generation history any time"):
    1. a queued or running job is canceled and refunded first (`generation_cancel`), so no
       worker finishes it afterwards (a finisher that lost the race discards what it copied);
    2. every stored object goes — each Asset's storage_key (inputs, outputs, thumbnails,
       posters) and anything else left under the generation's prefix;
    3. then the rows (assets cascade). A generation whose objects could not all be removed
       keeps its row, so the retry knows what is left; StorageUnavailable is raised for it.

    Ledger entries stay (money records) and hold no prompt: their memo names the kind and
    model, their reference the generation's uuid.
    """
    from contextlib import suppress

    generations = list(Generation.objects.select_related("owner", "model").filter(owner=user, pk__in=ids))
    for generation in generations:
        if generation.status in ACTIVE_STATUSES:
            # NotAllowed: it finished meanwhile, and its outputs are deleted below like any others.
            with suppress(NotAllowed):
                generation_cancel(user=user, generation=generation)
    keys: dict[int, set[str]] = {generation.pk: set() for generation in generations}
    assets = Asset.objects.filter(generation__in=generations).values_list("generation_id", "storage_key")
    for generation_id, key in assets:
        keys[generation_id].add(key)
    for generation in generations:
        keys[generation.pk] |= storage.keys_under(generation.storage_prefix)
    failed = {pk for pk, generation_keys in keys.items() if not storage.delete_keys(generation_keys)}
    done = [generation.pk for generation in generations if generation.pk not in failed]
    Generation.objects.filter(owner=user, pk__in=done).delete()
    if failed:
        raise storage.StorageUnavailable(f"could not delete the stored objects of generations {sorted(failed)}")
    return len(done)


def generation_history_delete(*, user, until=None) -> int:
    """Delete everything the person made up to `until` (default now), in batches, and the pictures
    kept from refused create forms (they are history too)."""
    until = until or timezone.now()
    total = 0
    while True:
        ids = list(
            Generation.objects.filter(owner=user, queued_at__lte=until)
            .order_by("pk")
            .values_list("pk", flat=True)[:DELETE_BATCH]
        )
        if not ids:
            pending_uploads_sweep(user=user, older_than_seconds=0)
            return total
        total += generations_delete(user=user, ids=ids)


# --- retention (privacy.services.retention calls these from its beat task) ---------------------


def generation_error_details_purge(*, finished_before, limit: int = 500) -> int:
    """Blank the staff-only error details (provider messages, tracebacks) of jobs that finished
    before `finished_before`. The sentence the person was shown (`error_message`) stays. Bounded
    per call; returns how many jobs were cleaned."""
    from generation.models import FINAL_STATUSES

    rows = Generation.objects.filter(status__in=FINAL_STATUSES, finished_at__lt=finished_before).exclude(
        error_detail=""
    )
    ids = list(rows.order_by("pk").values_list("pk", flat=True)[:limit])
    return Generation.objects.filter(pk__in=ids).update(error_detail="")


# What an assistant job keeps of its parameters once its prompt is purged: what its media needs to
# be shown (the frame's shape, how many variations there are). Style, strength, seed and the rest
# describe what the person asked for, so they go with the prompt.
ASSISTANT_KEPT_PARAMS = ("aspect_ratio", "num_outputs")


def generation_assistant_prompts_purge(*, queued_before, except_owners, limit: int = 500, now=None) -> int:
    """Blank the prompt, negative prompt, seed and parameters (all but ASSISTANT_KEPT_PARAMS) of
    finished jobs asked for from an assistant (ASSISTANT_SOURCES) before `queued_before`, but not
    those of `except_owners` (user ids, a queryset is fine). Sets `prompt_purged_at`, so a row is
    done once; rows another run holds are skipped. Bounded per call; returns how many."""
    from generation.models import ASSISTANT_SOURCES, FINAL_STATUSES

    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            Generation.objects.filter(
                source__in=ASSISTANT_SOURCES,
                prompt_purged_at__isnull=True,
                status__in=FINAL_STATUSES,
                queued_at__lt=queued_before,
            )
            .exclude(owner_id__in=except_owners)
            .order_by("queued_at", "pk")
            .select_for_update(skip_locked=True)
            .only("pk", "params")[:limit]
        )
        for row in rows:
            row.prompt = ""
            row.negative_prompt = ""
            row.seed = None
            row.params = {name: value for name, value in (row.params or {}).items() if name in ASSISTANT_KEPT_PARAMS}
            row.prompt_purged_at = now
        Generation.objects.bulk_update(rows, ["prompt", "negative_prompt", "seed", "params", "prompt_purged_at"])
    return len(rows)


def generation_inputs_purge(*, finished_before, limit: int = 200) -> tuple[int, int]:
    """Delete the input pictures of jobs that finished before `finished_before`: the stored
    objects first, then the Asset rows of those whose objects are gone (a failed delete keeps its
    row, so the next run tries again). The result page then says the input was removed.
    Bounded per call; returns (inputs deleted, bytes freed)."""
    from generation.models import FINAL_STATUSES

    found = list(
        Asset.objects.filter(
            role=AssetRole.INPUT,
            generation__status__in=FINAL_STATUSES,
            generation__finished_at__lt=finished_before,
        )
        .order_by("pk")
        .values_list("pk", "storage_key", "bytes")[:limit]
    )
    deleted = [(pk, size) for pk, key, size in found if storage.delete_keys([key])]
    Asset.objects.filter(pk__in=[pk for pk, _ in deleted]).delete()
    return len(deleted), sum(size for _, size in deleted)
