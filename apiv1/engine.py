"""The one engine behind every assistant's door: API v1 (django-ninja) and the MCP server call
these plain functions, so a job asked for from ChatGPT, Claude, a script or the web page goes
through the same checks, charges and limits (`generation.services`) and reads back the same.

Nothing here knows about ninja or MCP: arguments are plain values, results are model instances
or JSON-ready dicts. Errors are the services' own (`config.errors.ApplicationError` subclasses:
InvalidInput 422, InsufficientCredits 402, AccountBlocked 403, AccountPaused 403, NotAllowed
409, SubmitRateLimited 429, ...) plus API v1's (`apiv1.errors`); each door turns them into its
own answer (problem+json, an MCP tool error).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.core import signing
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from apiv1.errors import GenerationNotFound, IdempotencyKeyReused, IdempotencyTargetGone
from apiv1.models import IdempotencyRecord
from generation import services, storage
from generation.errors import InvalidInput
from generation.models import FINAL_STATUSES, Asset, AssetRole, CatalogEntry, Generation, Kind, Source, Status
from generation.selectors import (
    BadCursor,
    GalleryFilters,
    gallery_cursor_decode,
    gallery_cursor_encode,
    gallery_cursor_for,
    gallery_queryset,
)

MAX_WAIT_SECONDS = 40.0  # GPT Actions give a call 45 s; MCP clients time out around a minute
LIST_LIMIT_MAX = 50  # keeps a page far below the 100,000 characters a GPT Action accepts
LIST_LIMIT_DEFAULT = 20
LIST_MAX_CHARS = 60_000
IDEMPOTENCY_KEY_MAX = 255
FILE_REFS_MAX = 10  # ChatGPT sends at most ten files
GLB_MIME = "model/gltf-binary"
_VIEWER_SALT = "apiv1.viewer"


# --- catalog -------------------------------------------------------------------------------------------


def catalog_list() -> list[dict]:
    """The models a person can use here (enabled, provider configured), cheapest kind first, with
    what each accepts. `credit_cost` is per result; `num_outputs` variations cost that many times."""
    return [catalog_entry_json(entry) for entry in services.catalog_available()]


def catalog_entry_json(entry: CatalogEntry) -> dict:
    return {
        "slug": entry.slug,
        "title": entry.title,
        "description": entry.description,
        "kind": entry.kind,
        "credit_cost": entry.credit_cost,
        "pro_only": entry.pro_only,
        "parameters": [_parameter_json(name, rule) for name, rule in (entry.parameters or {}).items()],
    }


def _parameter_json(name: str, rule: dict) -> dict:
    item = {"name": name, "type": rule.get("type", "text"), "required": bool(rule.get("required", False))}
    for key in ("choices", "min", "max", "default", "max_length"):
        if key in rule:
            item[key] = rule[key]
    if item["type"] == "image":
        item["description"] = "The input picture: give image_url (or, from ChatGPT, attach it: openaiFileIdRefs)."
    return item


def _entry(slug: str) -> CatalogEntry:
    entry = services.catalog_entry_available(slug)
    if entry is None:
        raise InvalidInput("Unknown model. List the models (GET /api/v1/models) and pass one's slug.", field="model")
    return entry


# --- creating ---------------------------------------------------------------------------------------------


def generation_create(
    *,
    user,
    model: str,
    prompt: str = "",
    params: dict | None = None,
    image_url: str = "",
    file_refs: list[dict] | None = None,
    source: str,
    idempotency_key: str = "",
    fingerprint: str = "",
    request=None,
) -> tuple[Generation, bool]:
    """Validate, charge and queue one generation, as the create page does; returns it and whether
    this call created it (False: an Idempotency-Key replay of an earlier call).

    `file_refs` are ChatGPT's `openaiFileIdRefs` ({name, id, mime_type, download_link}): the first
    image's link is fetched like an `image_url`, through the SSRF guard of `generation.inputs`.
    With a `request`, the submit counts against the per-person and per-address limits
    (`generation_submit_throttle`, 429).

    Idempotency: the record of `idempotency_key` is inserted in the same transaction as the submit.
    A concurrent call with the same key blocks on the unique index (owner, key) until the first
    commits, then fails to insert and reads the first one's generation: one job, one charge, both
    callers get its id. If the first fails (no credits, a bad link), nothing of it stays and the
    second runs on its own. The same key with a different request is refused
    (`IdempotencyKeyReused`). The transaction is held while an image link is fetched (bounded by
    INPUT_URL_DEADLINE); only the duplicate waits on it.
    """
    values = dict(params or {})
    if prompt:
        values["prompt"] = prompt
    _refuse_nul({"model": model, "image_url": image_url, "Idempotency-Key": idempotency_key, **values})
    entry = _entry(model)
    link = _image_link(image_url, file_refs)
    spec = services.GenerationSpec(model=entry, values=values, image_url=link, source=source)
    key = (idempotency_key or "").strip()
    if key:
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise InvalidInput(
                f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters.", field="Idempotency-Key"
            )
        fingerprint = fingerprint or request_fingerprint(
            model=entry.slug, values=values, image_url=image_url, file_refs=file_refs
        )
        replayed = _replay(user, key, fingerprint)
        if replayed is not None:
            return replayed, False
    if request is not None:
        _throttle(request, user)
    if not key:
        return _fresh(services.generation_submit(user=user, spec=spec)), True
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(owner=user, key=key, fingerprint=fingerprint)
            generation = services.generation_submit(user=user, spec=spec)
            IdempotencyRecord.objects.filter(pk=record.pk).update(generation=generation)
    except IntegrityError:
        replayed = _replay(user, key, fingerprint)  # the concurrent first call committed meanwhile
        if replayed is None:
            raise
        return replayed, False
    return _fresh(generation), True


def _fresh(generation: Generation) -> Generation:
    """A job this call just queued has no outputs yet: say so, rather than ask the database."""
    generation.api_outputs = []
    return generation


def _refuse_nul(values: dict) -> None:
    """PostgreSQL text cannot hold NUL characters: refuse them as bad input (422), not a 500."""
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"{name.replace('_', ' ').capitalize()} contains a NUL character.", field=name)


def request_fingerprint(*, model: str, values: dict, image_url: str = "", file_refs: list[dict] | None = None) -> str:
    """What makes two requests "the same" for an Idempotency-Key: model, values, the image link,
    and the ids of attached files (not their download links, which ChatGPT signs anew)."""
    files = [str(ref.get("id") or ref.get("download_link") or "") for ref in file_refs or [] if isinstance(ref, dict)]
    body = {"model": model, "values": values, "image_url": (image_url or "").strip(), "files": files}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _replay(user, key: str, fingerprint: str) -> Generation | None:
    """The generation an earlier call with this key made, or None (no live record)."""
    cutoff = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    record = IdempotencyRecord.objects.filter(owner=user, key=key).first()
    if record is None:
        return None
    if record.created_at < cutoff:
        # Expired, not swept yet: the key may be used afresh (Stripe's rule too).
        IdempotencyRecord.objects.filter(pk=record.pk, created_at__lt=cutoff).delete()
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if record.generation_id is None:
        raise IdempotencyTargetGone()
    generation = _one(user).filter(pk=record.generation_id).first()
    if generation is None:  # being deleted (hidden from the person already)
        raise IdempotencyTargetGone()
    return generation


def idempotency_records_sweep(*, older_than_hours: float | None = None) -> int:
    """Delete Idempotency-Key records past API_IDEMPOTENCY_HOURS (beat: apiv1.tasks)."""
    hours = settings.API_IDEMPOTENCY_HOURS if older_than_hours is None else older_than_hours
    return IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - timedelta(hours=hours)).delete()[0]


def _image_link(image_url: str, file_refs: list[dict] | None) -> str:
    refs = [ref for ref in (file_refs or []) if isinstance(ref, dict)]
    image_url = (image_url or "").strip()
    if image_url and refs:
        raise InvalidInput("Give either image_url or an attached file (openaiFileIdRefs), not both.", field="image_url")
    if image_url or not refs:
        return image_url
    if len(refs) > FILE_REFS_MAX:
        raise InvalidInput(f"Attach at most {FILE_REFS_MAX} files.", field="openaiFileIdRefs")
    pictures = [ref for ref in refs if str(ref.get("mime_type") or "image/").lower().startswith("image/")]
    if not pictures:
        raise InvalidInput(
            "The attached file is not a picture. Attach a PNG, JPEG or WebP image.", field="openaiFileIdRefs"
        )
    link = str(pictures[0].get("download_link") or "").strip()
    if not link:
        raise InvalidInput("The attached picture came without a download link.", field="openaiFileIdRefs")
    return link


def _throttle(request, user) -> None:
    """The submit limits of every door. They count per `request.user`: behind a Bearer key or
    OAuth token that is the credential's owner, not the anonymous session."""
    if getattr(request, "user", None) is None or request.user.pk != user.pk:
        request.user = user
    services.generation_submit_throttle(request=request)


# --- reading ---------------------------------------------------------------------------------------------


def _outputs_prefetch() -> Prefetch:
    return Prefetch(
        "assets", queryset=Asset.objects.filter(role=AssetRole.OUTPUT).order_by("index"), to_attr="api_outputs"
    )


def _one(user):
    return (
        Generation.objects.filter(owner=user, deleting_at__isnull=True)
        .select_related("model", "owner")
        .prefetch_related(_outputs_prefetch())
    )


def generation_get(*, user, generation_id) -> Generation:
    """The person's own generation by its public id (uuid); anyone else's, a deleted one or a
    malformed id is GenerationNotFound (404) alike."""
    try:
        public_id = generation_id if isinstance(generation_id, uuid.UUID) else uuid.UUID(str(generation_id))
    except ValueError as exc:
        raise GenerationNotFound() from exc
    generation = _one(user).filter(uuid=public_id).first()
    if generation is None:
        raise GenerationNotFound()
    return generation


def generation_wait(generation: Generation, seconds: float) -> Generation:
    """Hold on until the job is final or `seconds` (at most MAX_WAIT_SECONDS) pass, reading its
    status with short sleeps (50 ms growing to 500 ms: a local job is seen within a tick, a long
    3D job costs two queries a second). Returns the generation read afresh, outputs included."""
    deadline = time.monotonic() + max(0.0, min(float(seconds or 0), MAX_WAIT_SECONDS))
    pause = 0.05
    status = generation.status
    while status not in FINAL_STATUSES:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, 0.5)
        status = Generation.objects.filter(pk=generation.pk).values_list("status", flat=True).first()
        if status is None:
            return generation  # deleted meanwhile
    fresh = _one(generation.owner_id).filter(pk=generation.pk).first()
    return fresh or generation


def _list_queryset(*, user, cursor: str, kind: str, status: str):
    """The person's generations a listing shows (filters checked, the cursor's keyset applied)."""
    if kind and kind not in Kind.values:
        raise InvalidInput(f"kind must be one of: {', '.join(Kind.values)}.", field="kind")
    if status and status not in Status.values:
        raise InvalidInput(f"status must be one of: {', '.join(Status.values)}.", field="status")
    queryset = gallery_queryset(user=user, filters=GalleryFilters(kind=kind, status=status))
    if cursor:
        try:
            stamp, pk = gallery_cursor_decode(cursor)
        except BadCursor as exc:
            raise InvalidInput("This cursor is not one we gave out. Start again without it.", field="cursor") from exc
        queryset = queryset.filter(queued_at__lte=stamp).filter(Q(queued_at__lt=stamp) | Q(pk__lt=pk))
    return queryset.order_by("-queued_at", "-id")


def _page_size(limit) -> int:
    return max(1, min(int(limit or LIST_LIMIT_DEFAULT), LIST_LIMIT_MAX))


def generation_list(
    *, user, cursor: str = "", limit: int = LIST_LIMIT_DEFAULT, kind: str = "", status: str = ""
) -> tuple[list[Generation], str]:
    """One page of the person's generations (model instances), newest first, and the cursor of
    the next page ("" on the last). Keyset pagination on (queued_at, id) with the gallery's signed
    cursors (`generation.selectors`): two queries whatever the page (rows with their model; outputs).
    `generation_page_json` answers the same page as JSON for less."""
    limit = _page_size(limit)
    queryset = _list_queryset(user=user, cursor=cursor, kind=kind, status=status)
    rows = list(queryset.select_related("model").prefetch_related(_outputs_prefetch())[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, gallery_cursor_encode(rows[-1]) if more else ""


def generation_page_json(
    *,
    user,
    cursor: str = "",
    limit: int = LIST_LIMIT_DEFAULT,
    kind: str = "",
    status: str = "",
    request=None,
    max_chars: int = LIST_MAX_CHARS,
) -> str:
    """The page `generation_list` gives, as JSON text: `{"items": [...], "next_cursor": ...}`,
    items as `generation_json` makes them, written as the API writes JSON (DjangoJSONEncoder:
    times to the millisecond, UTC as `Z`).

    It stays under `max_chars` characters whatever the prompts hold (GPT Actions refuse answers
    over 100,000): a page that would grow past it ends early, and its cursor continues right after
    the last item shown. At least one item is shown. Each item is encoded once, for the size and
    the answer.

    Two queries whatever the page, both read as plain values (no model instances: a Generation,
    its catalog row with three JSON columns and its assets cost more to build than the rest of
    the answer): the rows with their model's slug, then their outputs. The page's links are
    signed in one pass (`storage.access_urls`)."""
    limit = _page_size(limit)
    queryset = _list_queryset(user=user, cursor=cursor, kind=kind, status=status)
    rows = list(queryset.values(*_ITEM_COLUMNS)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    outputs: dict[int, list[_Output]] = {}
    if rows:
        found = (
            Asset.objects.filter(generation_id__in=[row["pk"] for row in rows], role=AssetRole.OUTPUT)
            .order_by("generation_id", "index")
            .values_list(*_Output._fields)
        )
        for output in map(_Output._make, found):
            outputs.setdefault(output.generation_id, []).append(output)
    items = _items_json(rows, outputs, request=request, stamp=_as_is)
    next_cursor = _cursor_after(rows[-1]) if more else ""
    shown: list[str] = []
    size = 0
    for index, item in enumerate(items):
        text = _JSON.encode(item)
        size += len(text)
        if shown and size > max_chars:
            next_cursor = _cursor_after(rows[index - 1])
            break
        shown.append(text)
    return f'{{"items": [{", ".join(shown)}], "next_cursor": {_JSON.encode(next_cursor or None)}}}'


_JSON = DjangoJSONEncoder()  # what ninja's renderer uses for the API's answers


def _cursor_after(row: dict) -> str:
    return gallery_cursor_for(queued_at=row["queued_at"], pk=row["pk"])


# --- changing -------------------------------------------------------------------------------------------


def generation_cancel(*, user, generation_id) -> Generation:
    """Cancel a queued or running job (credits back); NotAllowed (409) once it is final."""
    generation = generation_get(user=user, generation_id=generation_id)
    services.generation_cancel(user=user, generation=generation)
    return generation_get(user=user, generation_id=generation_id)


def generation_delete(*, user, generation_id) -> None:
    """Delete a generation and its files (a running one is canceled and refunded first). It is
    gone from every listing at once; a task removes the files, then the row."""
    generation = generation_get(user=user, generation_id=generation_id)
    services.generations_delete_request(user=user, ids=[generation.pk])


# --- JSON ---------------------------------------------------------------------------------------------------


def outputs_of(generation: Generation) -> list[Asset]:
    outputs = getattr(generation, "api_outputs", None)
    if outputs is None:
        outputs = [asset for asset in generation.assets.all() if asset.role == AssetRole.OUTPUT]
    return sorted(outputs, key=lambda asset: asset.index)


# What one item of the JSON needs: a generation's columns (`values()` names) and its outputs'.
_ITEM_COLUMNS = (
    "pk",
    "uuid",
    "status",
    "kind",
    "model__slug",
    "prompt",
    "negative_prompt",
    "params",
    "cost",
    "source",
    "queued_at",
    "finished_at",
    "error_message",
)


class _Output(NamedTuple):
    generation_id: int
    index: int
    storage_key: str
    mime_type: str
    width: int | None
    height: int | None
    bytes: int

    @classmethod
    def of(cls, asset: Asset) -> _Output:
        return cls(asset.generation_id, asset.index, asset.storage_key, asset.mime_type, asset.width, asset.height,
                   asset.bytes)  # fmt: skip


def _row_of(generation: Generation) -> dict:
    return {
        "pk": generation.pk,
        "uuid": generation.uuid,
        "status": generation.status,
        "kind": generation.kind,
        "model__slug": generation.model.slug,
        "prompt": generation.prompt,
        "negative_prompt": generation.negative_prompt,
        "params": generation.params,
        "cost": generation.cost,
        "source": generation.source,
        "queued_at": generation.queued_at,
        "finished_at": generation.finished_at,
        "error_message": generation.error_message,
    }


def generation_json(generation: Generation, *, request=None) -> dict:
    """A generation as the API and the MCP tools show it. Output URLs are short-lived signed links
    (presigned S3, or signed links to our site); a finished 3D model also has a `viewer_url`, a
    page that shows it without sign-in while its signed link is valid."""
    return _item(generation, request=request, stamp=_iso)


def generation_text(generation: Generation, *, request=None) -> str:
    """`generation_json` as the JSON text the API answers (what ninja writes for GenerationOut:
    DjangoJSONEncoder, times to the millisecond with `Z`), for the create/get answers."""
    return _JSON.encode(_item(generation, request=request, stamp=_as_is))


def _item(generation: Generation, *, request, stamp) -> dict:
    outputs = [_Output.of(asset) for asset in outputs_of(generation)]
    return _items_json([_row_of(generation)], {generation.pk: outputs}, request=request, stamp=stamp)[0]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _as_is(moment: datetime) -> datetime:
    return moment


def _items_json(rows: list[dict], outputs: dict[int, list[_Output]], *, request=None, stamp=_iso) -> list[dict]:
    """Generations (`_ITEM_COLUMNS` values, outputs by generation pk, in index order) as JSON-ready
    dicts: one serializer for a single generation and for a page. What every item shares is
    worked out once (the site's root, the page route, the signer of the output links). `stamp`
    writes the times (ISO 8601 text, or kept as datetimes for an encoder)."""
    files = [(output.storage_key, _download_name(row, output)) for row in rows for output in outputs.get(row["pk"], ())]
    links = iter(storage.access_urls(files))
    root = _root(request)
    # reverse() costs more than the rest of an item; a uuid is left as it is by reverse.
    web_head, web_tail = reverse("generation:detail", args=[_PLACEHOLDER_UUID]).split(str(_PLACEHOLDER_UUID))
    items = []
    for row in rows:
        mine = outputs.get(row["pk"], ())
        items.append(
            {
                "id": str(row["uuid"]),
                "status": row["status"],
                "kind": row["kind"],
                "model": row["model__slug"],
                "prompt": row["prompt"],
                "negative_prompt": row["negative_prompt"],
                "params": row["params"] or {},
                "cost": row["cost"],
                "source": row["source"],
                "created_at": stamp(row["queued_at"]),
                "finished_at": stamp(row["finished_at"]) if row["finished_at"] else None,
                "error": row["error_message"] or None,
                "outputs": [
                    {
                        "url": _on_site(next(links), root),
                        "mime_type": output.mime_type,
                        "width": output.width,
                        "height": output.height,
                        "bytes": output.bytes,
                    }
                    for output in mine
                ],
                "viewer_url": _viewer_link(row, mine, root),
                "web_url": f"{root}{web_head}{row['uuid']}{web_tail}",
            }
        )
    return items


_PLACEHOLDER_UUID = uuid.UUID(int=0)


def _download_name(row: dict, output: _Output) -> str:
    """`generation.views.download_name` of an output, from values (no instances):
    `atelier-<slug of the prompt>-<short id>[-<n>].<ext>` (tests hold the two to the same names)."""
    words = slugify(row["prompt"])[:48].rstrip("-") or slugify(_KIND_LABELS.get(row["kind"], row["kind"])) or "result"
    suffix = f"-{output.index + 1}" if output.index else ""
    ext = output.storage_key.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    return f"atelier-{words}-{row['uuid'].hex[:8]}{suffix}.{ext}"


_KIND_LABELS = dict(Kind.choices)


def _root(request=None) -> str:
    """Scheme and host links to our site start with: the request's, else SITE_URL."""
    return request.build_absolute_uri("/")[:-1] if request is not None else settings.SITE_URL


def _on_site(url: str, root: str) -> str:
    return root + url if url.startswith("/") else url


def credits_json(user) -> dict:
    """The person's balance, any open debt (new jobs are refused until it is settled) and plan."""
    from billing.selectors import wallet_of
    from billing.services.payments import subscription_current

    wallet = wallet_of(user=user)
    subscription = subscription_current(user=user)
    return {
        "balance": wallet.balance if wallet is not None else 0,
        "debt": wallet.debt if wallet is not None else 0,
        "plan": "pro" if subscription is not None else "free",
        "plan_title": (subscription.plan.title if subscription and subscription.plan else None),
    }


# --- the signed 3D viewer -------------------------------------------------------------------------------


def viewer_url(generation: Generation, *, request=None, outputs: list[Asset] | None = None) -> str | None:
    """An absolute link to a page that shows this finished 3D model without sign-in, valid
    API_VIEWER_LINK_SECONDS (a chat can open it; someone it is passed on to can too, until then).
    None for anything but a finished 3D model. The token is the generation's id, signed with a
    timestamp (django.core.signing): it names nothing else of the account."""
    outputs = outputs_of(generation) if outputs is None else outputs
    row = {"uuid": generation.uuid, "kind": generation.kind, "status": generation.status}
    return _viewer_link(row, [_Output.of(asset) for asset in outputs], _root(request))


def _viewer_link(row: dict, outputs, root: str) -> str | None:
    if row["kind"] != Kind.IMAGE_TO_3D or row["status"] != Status.SUCCEEDED:
        return None
    if not any(output.mime_type == GLB_MIME for output in outputs):
        return None
    token = signing.TimestampSigner(salt=_VIEWER_SALT).sign(row["uuid"].hex)
    return _on_site(reverse("apiv1:viewer", args=[token]), root)


class ViewerLinkExpired(Exception):
    pass


class ViewerLinkInvalid(Exception):
    pass


def viewer_generation(token: str) -> tuple[Generation, datetime]:
    """The finished 3D generation a viewer token names, and when the link stops working. Raises
    ViewerLinkExpired (a genuine link past its time) or ViewerLinkInvalid (tampered, unknown,
    deleted, or the owner's account is closed or paused: restriction of processing covers showing
    their work to others)."""
    signer = signing.TimestampSigner(salt=_VIEWER_SALT)
    try:
        value = signer.unsign(token, max_age=settings.API_VIEWER_LINK_SECONDS)
    except signing.SignatureExpired as exc:
        raise ViewerLinkExpired() from exc
    except signing.BadSignature as exc:
        raise ViewerLinkInvalid() from exc
    try:
        public_id = uuid.UUID(hex=value)
    except ValueError as exc:
        raise ViewerLinkInvalid() from exc
    generation = (
        Generation.objects.filter(
            uuid=public_id,
            status=Status.SUCCEEDED,
            kind=Kind.IMAGE_TO_3D,
            deleting_at__isnull=True,
            owner__is_active=True,
            owner__paused_at__isnull=True,
        )
        .select_related("model")
        .prefetch_related(_outputs_prefetch())
        .first()
    )
    if generation is None or not any(asset.mime_type == GLB_MIME for asset in outputs_of(generation)):
        raise ViewerLinkInvalid()
    signed_at = signing.b62_decode(token.rsplit(signer.sep, 2)[1])
    expires = datetime.fromtimestamp(signed_at, tz=UTC) + timedelta(seconds=settings.API_VIEWER_LINK_SECONDS)
    return generation, expires


def source_for_request(request) -> str:
    """Where an API call comes from: ChatGPT's GPT Action (an OAuth token, or ChatGPT's user
    agent) or another API client. The MCP server passes Source.MCP itself."""
    token = getattr(request, "oauth_token", None)
    if token is not None:
        from atelier_oauth.services import oauth_token_source

        # The staff-created GPT Action client; a client that registered itself is another program.
        if oauth_token_source(token) == "gpt_action":
            return Source.GPT_ACTION
    if "ChatGPT-User" in request.headers.get("User-Agent", ""):
        return Source.GPT_ACTION
    return Source.API
