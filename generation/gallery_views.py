"""The gallery: every generation a person made, newest first, with filters, search,
favourites and deletion. Owner-only throughout: another person's id is a 404.

Pagination is a keyset on (queued_at, id) behind an opaque signed `cursor` in the query
string; the filters live there too, so a link reproduces the view. htmx requests for the next
page get only the cards (`_gallery_page.html`), everything else gets the whole page.
"""

from __future__ import annotations

import uuid as uuid_module

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from generation import selectors, services, storage
from generation.gallery_forms import HISTORY_CONFIRMATION, GalleryFilterForm, HistoryDeleteForm
from generation.models import CatalogEntry


def _is_fragment_request(request: HttpRequest) -> bool:
    """htmx asking for more cards; a history restore (cache miss on back) wants the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def _cards(items) -> list[dict]:
    """What each card shows, worked out here rather than in the template: 24 cards are most of
    the page's cost, and plain values render several times faster than lookups and tags. The
    picture is a short-lived signed URL (signing only, no query)."""
    cards = []
    detail = reverse("generation:detail", args=[_UUID0])
    card = reverse("generation:gallery_card", args=[_UUID0])
    favorite = reverse("generation:favorite", args=[_UUID0])
    now = timezone.now()
    pictures = [selectors.gallery_picture(generation) for generation in items]
    urls = iter(storage.access_urls((p.storage_key, p.filename) for p in pictures if p is not None))
    for generation, picture in zip(items, pictures, strict=True):
        key = str(generation.uuid)
        cards.append(
            {
                "generation": generation,
                "picture": picture,
                "picture_url": next(urls) if picture is not None else "",
                "detail_url": detail.replace(_UUID0_STR, key),
                "card_url": card.replace(_UUID0_STR, key),
                "favorite_url": favorite.replace(_UUID0_STR, key),
                "age": _age(generation.queued_at, now),
            }
        )
    return cards


_UUID0 = uuid_module.UUID(int=0)
_UUID0_STR = str(_UUID0)


def _age(when, now) -> str:
    """How old a card is, as people scan a grid: just now, 5 minutes ago, 3 days ago, then the date."""
    seconds = int((now - when).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size, below in (("minute", 60, 3600), ("hour", 3600, 86400), ("day", 86400, 30 * 86400)):
        if seconds < below:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    local = timezone.localtime(when)
    return f"{local.day} {local:%b %Y}"


@login_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    models = list(CatalogEntry.objects.only("slug", "title").order_by("kind", "order", "title"))
    form = GalleryFilterForm(request.GET, models=models)
    filters = form.filters()
    cursor = request.GET.get("cursor", "")
    try:
        page = selectors.gallery_page(user=request.user, filters=filters, cursor=cursor)
    except selectors.BadCursor:
        # A stale or hand-edited link: start from the newest rather than fail.
        cursor = ""
        page = selectors.gallery_page(user=request.user, filters=filters)
    query = request.GET.copy()
    query.pop("cursor", None)
    base_query = query.urlencode()
    context = {
        "cards": _cards(page.items),
        "next_cursor": page.next_cursor,
        "next_url": _page_url(base_query, page.next_cursor) if page.next_cursor else "",
        "base_query": base_query,
        "cursor": cursor,
        "newest_url": reverse("generation:gallery") + (f"?{base_query}" if base_query else ""),
        "here": request.get_full_path(),
        "filters": filters,
        "kind_choices": form.fields["kind"].choices,
        "model_choices": form.fields["model"].choices,
        "status_choices": form.fields["status"].choices,
        "filters_open": any((filters.kind, filters.model, filters.status, filters.since, filters.until)),
        "history_confirmation": HISTORY_CONFIRMATION,
    }
    if _is_fragment_request(request):
        response = render(request, "generation/_gallery_page.html", context)
    else:
        if not page.items and not cursor:
            context["has_any"] = filters.active and selectors.gallery_has_any(user=request.user)
        response = render(request, "generation/gallery.html", context)
    # The same URL answers with a fragment or a page: caches (and the back button) must not mix them.
    patch_vary_headers(response, ["HX-Request"])
    return response


def _page_url(base_query: str, cursor: str) -> str:
    from urllib.parse import urlencode

    query = f"{base_query}&" if base_query else ""
    return f"{reverse('generation:gallery')}?{query}{urlencode({'cursor': cursor})}"


@login_required
@require_GET
def card(request: HttpRequest, uuid) -> HttpResponse:
    """htmx: one card, polled while its job runs; rendered without a trigger once final."""
    generation = selectors.gallery_card(user=request.user, uuid=uuid)
    context = {"card": _cards([generation])[0], "here": reverse("generation:gallery")}
    response = render(request, "generation/_gallery_card.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def favorite(request: HttpRequest, uuid) -> HttpResponse:
    """Star or unstar (POST favorite=1 or 0). htmx swaps the button; a plain form goes back."""
    generation = selectors.generation_for_owner(user=request.user, uuid=uuid)
    services.generation_favorite_set(
        user=request.user, generation=generation, favorite=request.POST.get("favorite") == "1"
    )
    if request.htmx:
        compact = request.POST.get("compact") == "1"  # the card's overlay star, not the result page's button
        here = _safe_next(request) or reverse("generation:gallery")
        return render(
            request, "generation/_favorite.html", {"generation": generation, "compact": compact, "here": here}
        )
    return redirect(_safe_next(request) or reverse("generation:gallery"))


@login_required
@require_POST
def delete_selected(request: HttpRequest) -> HttpResponse:
    """Delete the checked generations (a Celery task removes the files, then the rows)."""
    try:
        uuids = [uuid_module.UUID(value) for value in request.POST.getlist("selected")]
    except ValueError as exc:  # not ids at all
        raise Http404("No such generation.") from exc
    ids = selectors.gallery_owned_ids(user=request.user, uuids=uuids)
    if not ids:
        messages.info(request, "Nothing was selected.")
    else:
        count = services.generations_delete_request(user=request.user, ids=ids)
        messages.success(request, f"Deleted {count} generation{'s' if count != 1 else ''}, files included.")
    return redirect(_safe_next(request) or reverse("generation:gallery"))


@login_required
@require_http_methods(["GET", "POST"])
def delete_history(request: HttpRequest) -> HttpResponse:
    """Delete my whole history, behind a typed confirmation."""
    form = HistoryDeleteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.generation_history_delete_request(user=request.user)
        messages.success(
            request, "Your history is being deleted, files included. Your credit statement keeps its entries."
        )
        return redirect("generation:gallery")
    everything = selectors.gallery_queryset(user=request.user, filters=selectors.GalleryFilters())
    context = {"form": form, "history_confirmation": HISTORY_CONFIRMATION, "count": everything.count()}
    return render(request, "generation/gallery_delete_history.html", context)


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return ""
