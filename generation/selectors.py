from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.core import signing
from django.db import connection
from django.db.models import Func, Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from generation.models import Asset, AssetRole, Generation, Kind


def _with_assets(queryset):
    return queryset.select_related("model").prefetch_related(
        Prefetch("assets", queryset=Asset.objects.order_by("role", "index"))
    )


def generation_for_owner(*, user, uuid) -> Generation:
    """The person's own generation, or 404 — another person's id looks exactly like a missing one."""
    return get_object_or_404(_with_assets(Generation.objects.filter(owner=user)), uuid=uuid)


def asset_for_owner(*, user, uuid) -> Asset:
    return get_object_or_404(Asset.objects.select_related("generation"), uuid=uuid, generation__owner=user)


def recent_generations(*, user, limit: int | None = None):
    return _with_assets(Generation.objects.filter(owner=user))[: limit or settings.GENERATION_RECENT_LIMIT]


def assets_by_role(generation: Generation) -> dict[str, list[Asset]]:
    grouped: dict[str, list[Asset]] = {role: [] for role in AssetRole.values}
    for asset in generation.assets.all():
        grouped[asset.role].append(asset)
    return grouped


# --- gallery ---------------------------------------------------------------------------------------

GALLERY_PAGE_SIZE = 24  # divides into rows of 2, 3, 4 and 6
# What a card needs, no more: the JSON columns (params, the catalog's parameter schemas) and the
# long texts cost more to decode than the rest of the page's rows together.
GALLERY_FIELDS = ("uuid", "kind", "prompt", "status", "cost", "favorite", "queued_at", "owner_id", "model__title")
GALLERY_ASSET_FIELDS = ("uuid", "generation_id", "role", "index", "storage_key", "mime_type", "width", "height")
_CURSOR_SALT = "generation.gallery.cursor"


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class GalleryFilters:
    """What the gallery shows, as read from the query string (see gallery_forms.GalleryFilterForm)."""

    kind: str = ""
    model: str = ""  # catalog slug
    status: str = ""
    since: date | None = None  # inclusive, in TIME_ZONE
    until: date | None = None  # inclusive
    favorites: bool = False
    q: str = ""

    @property
    def active(self) -> bool:
        return any((self.kind, self.model, self.status, self.since, self.until, self.favorites, self.q))


@dataclass
class GalleryPage:
    items: list[Generation]
    next_cursor: str  # "" on the last page


def gallery_cursor_encode(generation: Generation) -> str:
    """An opaque token for "everything older than this item": its (queued_at, id), signed so a
    hand-made cursor cannot be fed to the query (and nothing about the row is readable)."""
    return gallery_cursor_for(queued_at=generation.queued_at, pk=generation.pk)


def gallery_cursor_for(*, queued_at: datetime, pk: int) -> str:
    """`gallery_cursor_encode` for a row read as values (no model instance)."""
    return signing.dumps([queued_at.isoformat(), pk], salt=_CURSOR_SALT, compress=True)


def gallery_cursor_decode(token: str) -> tuple[datetime, int]:
    try:
        stamp, pk = signing.loads(token, salt=_CURSOR_SALT)
        return datetime.fromisoformat(stamp), int(pk)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise BadCursor(token) from exc


class PromptVector(Func):
    """`to_tsvector('simple'::regconfig, prompt)`: exactly the expression of the GIN index
    `generation_prompt_search` (migration 0006), so PostgreSQL uses it. Django's own
    `SearchVector("prompt", config="simple")` wraps the column in COALESCE(prompt, ''), which is a
    different expression and would never match the index (prompt is NOT NULL anyway)."""

    template = "to_tsvector('simple'::regconfig, %(expressions)s)"
    output_field = SearchVectorField()


def _prompt_search(queryset, q: str):
    if connection.vendor == "postgresql":
        # websearch syntax: words are ANDed, "quoted phrases", -excluded, OR.
        query = SearchQuery(q, config="simple", search_type="websearch")
        return queryset.alias(prompt_vector=PromptVector("prompt")).filter(prompt_vector=query)
    # SQLite (the embedded default): every word somewhere in the prompt, as a substring.
    for word in q.split():
        queryset = queryset.filter(prompt__icontains=word.strip('"'))
    return queryset


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def gallery_neighbours(generation: Generation) -> tuple[Generation | None, Generation | None]:
    """The gallery's previous (newer) and next (older) items around one, in its order: (queued_at, id) desc."""
    mine = gallery_queryset(user=generation.owner_id, filters=GalleryFilters()).only("uuid", "queued_at", "id")
    at, pk = generation.queued_at, generation.pk
    newer = mine.filter(Q(queued_at__gt=at) | Q(queued_at=at, id__gt=pk)).order_by("queued_at", "id").first()
    older = mine.filter(Q(queued_at__lt=at) | Q(queued_at=at, id__lt=pk)).order_by("-queued_at", "-id").first()
    return newer, older


def gallery_queryset(*, user, filters: GalleryFilters):
    # Items being deleted (`deleting_at` set by the request) are gone from the person's view at once.
    queryset = Generation.objects.filter(owner=user, deleting_at__isnull=True)
    if filters.kind:
        queryset = queryset.filter(kind=filters.kind)
    if filters.model:
        queryset = queryset.filter(model__slug=filters.model)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.since:
        queryset = queryset.filter(queued_at__gte=_day_start(filters.since))
    if filters.until:
        queryset = queryset.filter(queued_at__lt=_day_start(filters.until + timedelta(days=1)))
    if filters.favorites:
        queryset = queryset.filter(favorite=True)
    if filters.q:
        queryset = _prompt_search(queryset, filters.q)
    return queryset


def gallery_page(*, user, filters: GalleryFilters, cursor: str = "", limit: int = GALLERY_PAGE_SIZE) -> GalleryPage:
    """One page of the person's gallery, newest first, by keyset on (queued_at, id) — never
    OFFSET, so page 400 costs what page 1 does (index `generation_gallery_cursor`).

    Two queries whatever the page: the generations with their model, and their assets. Raises
    BadCursor for a tampered or foreign token.
    """
    queryset = gallery_queryset(user=user, filters=filters)
    if cursor:
        stamp, pk = gallery_cursor_decode(cursor)
        # `queued_at <= stamp` is the index range; the OR only sorts out ties on the boundary.
        queryset = queryset.filter(queued_at__lte=stamp).filter(Q(queued_at__lt=stamp) | Q(pk__lt=pk))
    rows = list(
        queryset.order_by("-queued_at", "-id")
        .select_related("model")
        .only(*GALLERY_FIELDS)
        .prefetch_related(
            # A plain list (to_attr): `generation.assets.all()` would build a queryset per card.
            Prefetch(
                "assets",
                queryset=Asset.objects.only(*GALLERY_ASSET_FIELDS).order_by("role", "index"),
                to_attr="gallery_assets",
            )
        )[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return GalleryPage(items=rows, next_cursor=gallery_cursor_encode(rows[-1]) if more else "")


def gallery_card(*, user, uuid) -> Generation:
    """One card of the gallery (running cards poll it); another person's id is a 404."""
    return generation_for_owner(user=user, uuid=uuid)


def gallery_has_any(*, user) -> bool:
    return gallery_queryset(user=user, filters=GalleryFilters()).exists()


def gallery_owned_ids(*, user, uuids) -> list[int]:
    """Primary keys of these generations, all the person's own, or 404 if any is not: a bulk
    action naming someone else's item is refused whole rather than done in part."""
    uuids = set(uuids)
    ids = dict(Generation.objects.filter(owner=user, uuid__in=uuids).values_list("uuid", "pk"))
    if len(ids) != len(uuids):
        raise Http404("No such generation.")
    return list(ids.values())


def gallery_picture(generation: Generation) -> Asset | None:
    """What the card shows: the worker's WebP thumbnail; for a 3D model its poster (or the
    thumbnail made from its input picture, or the input picture itself); for an image whose
    thumbnail is not made yet, the output. Uses the prefetched assets (no query): a gallery
    page's list (`gallery_assets`) or the generation's own prefetch."""
    assets = getattr(generation, "gallery_assets", None)
    by_role: dict[str, Asset] = {}
    for asset in generation.assets.all() if assets is None else assets:
        by_role.setdefault(asset.role, asset)
    if generation.kind == Kind.IMAGE_TO_3D:
        order = (AssetRole.POSTER, AssetRole.THUMBNAIL, AssetRole.INPUT)
    else:
        order = (AssetRole.THUMBNAIL, AssetRole.OUTPUT)
    for role in order:
        asset = by_role.get(role)
        if asset is not None and asset.mime_type.startswith("image/"):
            return asset
    return None
