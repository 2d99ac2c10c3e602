"""The gallery: keyset pages, filters and search in the query string, favourites, deletion of
some or all of a history (storage first, checked against the S3 API server), owner-only URLs
and a bounded number of queries whatever the size of the history."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from billing import services as billing
from billing.models import LedgerEntry, LedgerReason, Wallet
from generation import selectors, services
from generation.models import Asset, AssetRole, CatalogEntry, Generation, Kind, Status

pytestmark = pytest.mark.django_db

MAX_QUERIES = 8


def png(size=(64, 64), color=(200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def fund(user, amount: int) -> None:
    billing.credits_grant(
        user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"gallery:{user.pk}:{amount}"
    )


def make(user, n: int, *, kind=Kind.TEXT_TO_IMAGE, slug="local-canvas", start=None, step=60, **fields):
    """n rows without running anything (fast, for pages and query counts), each with a
    thumbnail asset row, newest last; `queued_at` spaced `step` seconds apart back from `start`."""
    entry = CatalogEntry.objects.get(slug=slug)
    start = start or timezone.now()
    fields.setdefault("status", Status.SUCCEEDED)
    rows = Generation.objects.bulk_create(
        [
            Generation(owner=user, model=entry, kind=kind, prompt=fields.pop("prompt", f"item {i}"), cost=1, **fields)
            if i == 0
            else Generation(owner=user, model=entry, kind=kind, prompt=f"item {i}", cost=1, **fields)
            for i in range(n)
        ]
    )
    for i, row in enumerate(rows):
        row.queued_at = start - timedelta(seconds=step * (n - i))
    Generation.objects.bulk_update(rows, ["queued_at"], batch_size=500)
    Asset.objects.bulk_create(
        [
            Asset(
                generation=row,
                role=AssetRole.THUMBNAIL,
                storage_key=f"users/x/generations/{row.uuid}/thumb-0.webp",
                mime_type="image/webp",
                bytes=10,
                sha256="0" * 64,
                width=512,
                height=512,
            )
            for row in rows
        ],
        batch_size=500,
    )
    return rows


def submit(user, capture, *, slug="local-canvas", run=True, **values):
    """A real generation through the offline models (files in the configured storage)."""
    entry = CatalogEntry.objects.get(slug=slug)
    upload = None
    if entry.kind != Kind.TEXT_TO_IMAGE:
        upload = SimpleUploadedFile("photo.png", png(), content_type="image/png")
    spec = services.GenerationSpec(model=entry, values=values, image_upload=upload)
    if not run:
        return services.generation_submit(user=user, spec=spec)  # its task is never queued: stays queued
    with capture(execute=True):
        generation = services.generation_submit(user=user, spec=spec)
    generation.refresh_from_db()
    return generation


def uuids_in(html: str) -> list[str]:
    return re.findall(r'id="card-([0-9a-f-]{36})"', html)


@pytest.fixture
def signed_in(client, alice):
    fund(alice, 50)
    client.force_login(alice)
    return client


# --- the page ----------------------------------------------------------------------------------


def test_gallery_is_in_the_main_navigation(signed_in):
    page = signed_in.get("/create/").content.decode()
    assert 'href="/gallery/"' in page


def test_an_empty_gallery_invites_the_first_creation(signed_in):
    page = signed_in.get("/gallery/").content.decode()
    assert "Create your first image" in page
    assert 'href="/create/"' in page
    assert "gallery-grid" not in page


def test_cards_are_newest_first_with_status_kind_model_credits_and_age(signed_in, alice):
    rows = make(alice, 3)
    running = make(alice, 1, status=Status.RUNNING, kind=Kind.IMAGE_TO_3D, slug="local-relief")[0]
    page = signed_in.get("/gallery/").content.decode()
    assert uuids_in(page) == [str(running.uuid)] + [str(r.uuid) for r in reversed(rows)]
    assert "Running" in page and "3D" in page and "Atelier Canvas (offline)" in page
    assert "1 credit" in page and "ago" in page
    # The running card polls its own small fragment; a finished one does not.
    assert f'hx-get="/g/{running.uuid}/card/"' in page
    assert f'hx-get="/g/{rows[0].uuid}/card/"' not in page
    assert 'src="/files/' in page  # the thumbnail, through a signed short-lived link


def test_a_prompt_is_escaped_wherever_its_card_shows_it(signed_in, alice):
    """The cards are written out in Python (templatetags/gallery_cards.py), not by the template
    language's autoescape: the person's own text must still come out as text."""
    prompt = "\"><script>alert(1)</script> & 'quoted' " + "x" * 150
    make(alice, 1, prompt=prompt)
    page = signed_in.get("/gallery/").content.decode()
    assert "<script>alert" not in page
    escaped = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x27;quoted&#x27; "
    assert f'title="{escaped}{"x" * 150}">{escaped}{"x" * 150}</p>' in page  # the whole prompt
    assert f'alt="{escaped}{"x" * (119 - 39)}…"' in page  # as truncatechars:120, the ellipsis counted


def test_a_running_card_stops_polling_once_final(signed_in, alice):
    row = make(alice, 1, status=Status.RUNNING)[0]
    assert "every 2s" in signed_in.get(f"/g/{row.uuid}/card/").content.decode()
    Generation.objects.filter(pk=row.pk).update(status=Status.SUCCEEDED)
    fragment = signed_in.get(f"/g/{row.uuid}/card/").content.decode()
    assert "hx-trigger" not in fragment.split("<a ")[0] or "every 2s" not in fragment


def test_a_3d_item_shows_its_poster_or_else_its_input_picture(alice):
    row = make(alice, 1, kind=Kind.IMAGE_TO_3D, slug="local-relief")[0]
    row.assets.all().delete()
    for role, key in ((AssetRole.OUTPUT, "model.glb"), (AssetRole.INPUT, "input.png")):
        Asset.objects.create(
            generation=row, role=role, storage_key=f"k/{row.uuid}/{key}", mime_type="image/png", bytes=1, sha256="0"
        )
    Asset.objects.filter(role=AssetRole.OUTPUT, generation=row).update(mime_type="model/gltf-binary")
    page = selectors.gallery_page(user=alice, filters=selectors.GalleryFilters())
    assert selectors.gallery_picture(page.items[0]).role == AssetRole.INPUT
    Asset.objects.create(
        generation=row, role=AssetRole.POSTER, storage_key=f"k/{row.uuid}/p.webp", mime_type="image/webp", bytes=1
    )
    page = selectors.gallery_page(user=alice, filters=selectors.GalleryFilters())
    assert selectors.gallery_picture(page.items[0]).role == AssetRole.POSTER


# --- keyset pagination ---------------------------------------------------------------------------


def test_cursor_pages_walk_everything_once_newest_first_without_offset(signed_in, alice):
    rows = make(alice, 60)
    # Ties on queued_at are ordered by id: a page boundary inside a tie loses nothing.
    Generation.objects.filter(pk__in=[r.pk for r in rows[30:40]]).update(queued_at=rows[35].queued_at)
    seen, url = [], "/gallery/"
    with CaptureQueriesContext(connection) as queries:
        while url:
            response = signed_in.get(url)
            html = response.content.decode()
            seen += uuids_in(html)
            found = re.search(r'class="btn btn-secondary" href="([^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else ""
    expected = list(Generation.objects.filter(owner=alice).order_by("-queued_at", "-id").values_list("uuid", flat=True))
    assert seen == [str(u) for u in expected]
    assert not [q for q in queries.captured_queries if "OFFSET" in q["sql"].upper()]


def test_load_more_is_an_htmx_fragment_that_pushes_its_url(signed_in, alice):
    make(alice, 30)
    first = signed_in.get("/gallery/?kind=text_to_image").content.decode()
    more = re.search(r'hx-get="([^"]+)"[^>]*hx-trigger="click, revealed"', first).group(1).replace("&amp;", "&")
    assert "kind=text_to_image" in more and "cursor=" in more
    assert 'hx-push-url="true"' in first
    response = signed_in.get(more, HTTP_HX_REQUEST="true")
    fragment = response.content.decode()
    assert "<html" not in fragment and len(uuids_in(fragment)) == 6
    assert "HX-Request" in response["Vary"]
    # The pushed URL, opened afresh (back button, reload), is a whole page at the same place.
    page = signed_in.get(more).content.decode()
    assert "<html" in page and uuids_in(page) == uuids_in(fragment)
    assert "Back to the newest" in page


def test_a_tampered_cursor_starts_from_the_newest(signed_in, alice):
    make(alice, 3)
    response = signed_in.get("/gallery/?cursor=not-a-real-token")
    assert response.status_code == 200
    assert len(uuids_in(response.content.decode())) == 3


def test_a_cursor_is_opaque(alice):
    make(alice, 30)
    token = selectors.gallery_page(user=alice, filters=selectors.GalleryFilters()).next_cursor
    assert (
        token
        and str(Generation.objects.order_by("-queued_at").values_list("pk", flat=True)[23]) not in token.split(":")[0]
    )
    with pytest.raises(selectors.BadCursor):
        selectors.gallery_cursor_decode(token[:-2] + "xx")


# --- filters and search --------------------------------------------------------------------------


def test_filters_live_in_the_query_string(signed_in, alice):
    now = timezone.now()
    image = make(alice, 1, prompt="a red fox", start=now)[0]
    model3d = make(alice, 1, kind=Kind.IMAGE_TO_3D, slug="local-relief", prompt="a cup", start=now - timedelta(days=3))[
        0
    ]
    failed = make(alice, 1, status=Status.FAILED, prompt="broken", start=now - timedelta(days=10))[0]
    starred = make(alice, 1, favorite=True, prompt="a star", start=now - timedelta(days=20))[0]

    def shown(query):
        return set(uuids_in(signed_in.get(f"/gallery/?{query}").content.decode()))

    assert shown("kind=image_to_3d") == {str(model3d.uuid)}
    assert shown("model=local-relief") == {str(model3d.uuid)}
    assert shown("status=failed") == {str(failed.uuid)}
    assert shown("fav=on") == {str(starred.uuid)}
    since = (now - timedelta(days=11)).date().isoformat()
    until = (now - timedelta(days=2)).date().isoformat()
    assert shown(f"since={since}&until={until}") == {str(model3d.uuid), str(failed.uuid)}
    assert shown(f"since={until}&until={since}") == {str(model3d.uuid), str(failed.uuid)}  # reversed range
    assert shown("kind=nonsense") == {str(r.uuid) for r in (image, model3d, failed, starred)}
    page = signed_in.get("/gallery/?status=canceled").content.decode()
    assert "Nothing matches" in page and "Show everything" in page


def test_prompt_search_finds_words_and_keeps_other_filters(signed_in, alice):
    fox = make(alice, 1, prompt="A red fox in the snow at dawn")[0]
    make(alice, 1, prompt="a lighthouse at night")
    glove = make(alice, 1, prompt="foxglove flowers")[0]
    make(bob_like(alice), 1, prompt="a red fox that is not yours")
    # PostgreSQL matches words; SQLite (the embedded default) substrings.
    words = [str(fox.uuid)] if connection.vendor == "postgresql" else [str(glove.uuid), str(fox.uuid)]
    assert uuids_in(signed_in.get("/gallery/?q=fox").content.decode()) == words
    assert uuids_in(signed_in.get("/gallery/?q=RED+FOX").content.decode()) == [str(fox.uuid)]
    assert uuids_in(signed_in.get("/gallery/?q=fox&status=failed").content.decode()) == []


def bob_like(alice):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="full-text search is PostgreSQL's")
def test_prompt_search_uses_the_gin_index(alice):
    make(alice, 1, prompt="a red fox")
    queryset = selectors.gallery_queryset(user=alice, filters=selectors.GalleryFilters(q="fox"))
    sql, params = queryset.query.sql_with_params()
    assert 'to_tsvector(\'simple\'::regconfig, "generation_generation"."prompt")' in sql
    # The search predicate alone (the planner may prefer the owner index when one person's rows
    # are few): its expression is the index's, so the GIN index can answer it.
    sql, params = selectors._prompt_search(Generation.objects.all(), "fox").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "generation_prompt_search" in plan, plan


def test_the_favourites_view_reads_its_own_index_in_gallery_order(alice, bob):
    """Favourites are a few % of a history: without the partial index PostgreSQL read every row
    of the person's and sorted them (the bench's filtered page, ~2.5 ms at 10,000 items)."""
    make(alice, 300)
    make(bob, 300)
    make(alice, 5, favorite=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE generation_generation")
    queryset = selectors.gallery_queryset(user=alice, filters=selectors.GalleryFilters(favorites=True))
    sql, params = queryset.order_by("-queued_at", "-id")[:25].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "generation_gallery_favorites" in plan and "Sort" not in plan, plan


# --- query counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 1000])
def test_every_gallery_view_runs_a_bounded_number_of_queries(signed_in, alice, n, django_assert_max_num_queries):
    make(alice, n - n // 10)
    make(
        alice,
        n // 10,
        kind=Kind.IMAGE_TO_3D,
        slug="local-relief",
        favorite=True,
        start=timezone.now() - timedelta(days=400),
    )
    deep = Generation.objects.filter(owner=alice).order_by("-queued_at", "-id")[n // 2]
    cursor = selectors.gallery_cursor_encode(deep)
    for url in (
        "/gallery/",
        f"/gallery/?cursor={cursor}",
        "/gallery/?kind=image_to_3d&model=local-relief&status=succeeded&fav=on&since=2020-01-01",
        "/gallery/?q=item",
        f"/gallery/?q=item&cursor={cursor}",
    ):
        with django_assert_max_num_queries(MAX_QUERIES):
            response = signed_in.get(url)
        assert response.status_code == 200
        assert uuids_in(response.content.decode())


# --- favourites ----------------------------------------------------------------------------------


def test_favourite_star_sets_and_unsets_with_htmx(signed_in, alice):
    row = make(alice, 1)[0]
    response = signed_in.post(f"/g/{row.uuid}/favorite/", {"favorite": "1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'aria-pressed="true"' in response.content.decode()
    assert Generation.objects.get(pk=row.pk).favorite
    response = signed_in.post(f"/g/{row.uuid}/favorite/", {"favorite": "1"}, HTTP_HX_REQUEST="true")  # resent
    assert Generation.objects.get(pk=row.pk).favorite
    response = signed_in.post(f"/g/{row.uuid}/favorite/", {"favorite": "0", "next": "/gallery/?fav=on"})
    assert response.status_code == 302 and response["Location"] == "/gallery/?fav=on"
    assert not Generation.objects.get(pk=row.pk).favorite
    response = signed_in.post(f"/g/{row.uuid}/favorite/", {"favorite": "1", "next": "https://evil.example/"})
    assert response["Location"] == "/gallery/"


def test_the_cards_star_and_its_htmx_answer_are_the_same_markup(signed_in, alice):
    """The card writes the star out (no include, for speed); clicking swaps in _favorite.html."""
    row = make(alice, 1, favorite=True)[0]
    page = signed_in.get("/gallery/").content.decode()
    star = re.search(
        r'<form method="post" action="/g/[^"]+/favorite/" class="favorite-form favorite-compact".*?</form>', page, re.S
    )
    swapped = signed_in.post(
        f"/g/{row.uuid}/favorite/", {"favorite": "1", "compact": "1", "next": "/gallery/"}, HTTP_HX_REQUEST="true"
    ).content.decode()

    def shape(html):
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
        return re.sub(r"\s+", "", re.sub(r"\{%.*?%\}", "", html))

    assert star and shape(star.group(0)) == shape(swapped)


# --- access control and CSRF ---------------------------------------------------------------------


def test_other_people_get_404_on_every_gallery_url(signed_in, alice, bob):
    row = make(alice, 1, status=Status.RUNNING)[0]
    other = Client()
    other.force_login(bob)
    assert other.get(f"/g/{row.uuid}/card/").status_code == 404
    assert other.post(f"/g/{row.uuid}/favorite/", {"favorite": "1"}).status_code == 404
    assert other.post("/gallery/delete/", {"selected": [str(row.uuid)]}).status_code == 404
    assert other.post("/gallery/delete/", {"selected": ["not-a-uuid"]}).status_code == 404
    assert other.post(f"/g/{uuid.uuid4()}/favorite/", {"favorite": "1"}).status_code == 404
    # Mixing someone else's item into a selection refuses the whole request.
    mine = make(bob, 1)[0]
    assert other.post("/gallery/delete/", {"selected": [str(mine.uuid), str(row.uuid)]}).status_code == 404
    assert Generation.objects.filter(pk__in=[row.pk, mine.pk]).count() == 2
    assert str(row.uuid) not in other.get("/gallery/").content.decode()
    other.post("/gallery/delete-history/", {"confirmation": "delete my history"})
    assert Generation.objects.filter(pk=row.pk, favorite=False).exists()
    anonymous = Client()
    for url in ("/gallery/", f"/g/{row.uuid}/card/", "/gallery/delete-history/"):
        assert anonymous.get(url).status_code == 302, url


def test_every_gallery_form_needs_csrf(alice):
    row = make(alice, 1)[0]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(f"/g/{row.uuid}/favorite/", {"favorite": "1"}).status_code == 403
    assert strict.post("/gallery/delete/", {"selected": [str(row.uuid)]}).status_code == 403
    assert strict.post("/gallery/delete-history/", {"confirmation": "delete my history"}).status_code == 403
    assert Generation.objects.filter(pk=row.pk, favorite=False).exists()
    page = strict.get("/gallery/").content.decode()
    assert page.count("csrfmiddlewaretoken") >= 2  # the star and the selection's delete


# --- deleting --------------------------------------------------------------------------------------


def bucket_keys(s3) -> set[str]:
    listing = s3["client"].list_objects_v2(Bucket=s3["bucket"])
    return {item["Key"] for item in listing.get("Contents", [])}


def test_bulk_delete_removes_files_then_rows_and_keeps_the_ledger(
    signed_in, alice, s3_storage, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    image = submit(alice, capture, prompt="a secret lighthouse")
    edit = submit(alice, capture, slug="local-restyle", prompt="a secret winter")
    model3d = submit(alice, capture, slug="local-relief")
    kept = submit(alice, capture, prompt="keep me")
    for generation in (image, edit, model3d, kept):
        assert generation.status == Status.SUCCEEDED, generation.error_detail
    before = bucket_keys(s3_storage)
    doomed = [image, edit, model3d]
    doomed_keys = set(Asset.objects.filter(generation__in=doomed).values_list("storage_key", flat=True))
    assert {"input", "output", "thumbnail"} <= set(Asset.objects.filter(generation=edit).values_list("role", flat=True))
    assert doomed_keys and doomed_keys <= before
    ledger = list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount", "memo"))

    with capture(execute=True):
        response = signed_in.post("/gallery/delete/", {"selected": [str(g.uuid) for g in doomed], "next": "/gallery/"})
    assert response.status_code == 302

    after = bucket_keys(s3_storage)
    for generation in doomed:
        prefix = f"users/{alice.public_id}/generations/{generation.uuid}/"
        assert not [key for key in after if key.startswith(prefix)], prefix
    assert set(Asset.objects.filter(generation=kept).values_list("storage_key", flat=True)) <= after
    assert after == before - doomed_keys
    assert list(Generation.objects.filter(owner=alice)) == [kept]
    assert list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount", "memo")) == ledger
    assert not LedgerEntry.objects.filter(memo__icontains="secret").exists()
    page = signed_in.get("/gallery/").content.decode()
    assert "Deleted 3 generations" in page and uuids_in(page) == [str(kept.uuid)]


def test_deleting_a_queued_job_cancels_and_refunds_it_first(signed_in, alice, django_capture_on_commit_callbacks):
    queued = submit(alice, django_capture_on_commit_callbacks, run=False, prompt="never mind")
    assert Wallet.objects.get(user=alice).balance == 49
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post("/gallery/delete/", {"selected": [str(queued.uuid)]})
    assert not Generation.objects.filter(pk=queued.pk).exists()
    assert Wallet.objects.get(user=alice).balance == 50
    assert LedgerEntry.objects.filter(reference=f"generation:{queued.uuid}").count() == 2  # held, released


def test_deleted_items_leave_the_gallery_before_the_task_runs(signed_in, alice):
    rows = make(alice, 3)
    signed_in.post("/gallery/delete/", {"selected": [str(rows[0].uuid)]})  # on_commit not run: task pending
    assert Generation.objects.filter(pk=rows[0].pk).exists()
    assert str(rows[0].uuid) not in uuids_in(signed_in.get("/gallery/").content.decode())
    signed_in.post("/gallery/delete-history/", {"confirmation": "Delete my history"})
    page = signed_in.get("/gallery/").content.decode()
    assert uuids_in(page) == [] and "Create your first image" in page


def test_two_bulk_deletes_in_a_row_both_stay_hidden_whatever_the_cache_does(signed_in, alice):
    from django.core.cache import cache

    rows = make(alice, 4)
    signed_in.post("/gallery/delete/", {"selected": [str(rows[0].uuid)]})  # tasks pending
    signed_in.post("/gallery/delete/", {"selected": [str(rows[1].uuid)]})
    cache.clear()  # e.g. Redis restarted
    shown = uuids_in(signed_in.get("/gallery/").content.decode())
    assert str(rows[0].uuid) not in shown and str(rows[1].uuid) not in shown
    assert len(shown) == 2
    # previous/next on the result page skip them too
    detail = signed_in.get(f"/g/{rows[2].uuid}/").content.decode()
    assert str(rows[1].uuid) not in detail and str(rows[0].uuid) not in detail


def test_delete_history_needs_the_typed_confirmation(signed_in, alice, django_capture_on_commit_callbacks):
    make(alice, 3)
    page = signed_in.get("/gallery/delete-history/").content.decode()
    assert "delete my history" in page and "(3 generations)" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/gallery/delete-history/", {"confirmation": "yes"})
    assert response.status_code == 200
    assert "exactly" in response.content.decode()
    assert Generation.objects.filter(owner=alice).count() == 3


def test_delete_whole_history_empties_the_bucket_of_it_and_keeps_later_work(
    signed_in, alice, bob, s3_storage, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    fund(bob, 5)
    for prompt in ("one", "two"):
        submit(alice, capture, prompt=prompt)
    submit(alice, capture, slug="local-relief")
    running = submit(alice, capture, run=False, prompt="running")
    Generation.objects.filter(pk=running.pk).update(status=Status.RUNNING)
    theirs = submit(bob, capture, prompt="bob's")
    kept = services.pending_upload_keep(user=alice, upload=_png_upload())  # from a refused create form
    assert kept.storage_key in bucket_keys(s3_storage)
    with capture(execute=True):
        response = signed_in.post("/gallery/delete-history/", {"confirmation": "  delete my HISTORY "})
    assert response.status_code == 302 and response["Location"] == "/gallery/"
    assert not Generation.objects.filter(owner=alice).exists()
    keys = bucket_keys(s3_storage)
    assert not [key for key in keys if key.startswith(f"users/{alice.public_id}/")]  # kept upload included
    assert not services.PendingUpload.objects.filter(owner=alice).exists()
    assert set(Asset.objects.filter(generation=theirs).values_list("storage_key", flat=True)) <= keys
    assert Wallet.objects.get(user=alice).balance == 50 - 4 + 0  # three done, the running one refunded
    # Work started after the request is not part of "history up to now".
    later = make(alice, 1, start=timezone.now() + timedelta(minutes=5))[0]
    assert services.generation_history_delete(user=alice, until=timezone.now()) == 0
    assert Generation.objects.filter(pk=later.pk).exists()


def test_a_storage_failure_keeps_the_rows_for_the_retry(alice, monkeypatch):
    from django.core.files.storage import FileSystemStorage

    rows = make(alice, 2)

    def refuse(self, key):
        raise OSError("storage down")

    monkeypatch.setattr(FileSystemStorage, "delete", refuse)
    with pytest.raises(services.storage.StorageUnavailable):
        services.generations_delete(user=alice, ids=[r.pk for r in rows])
    assert Generation.objects.filter(owner=alice).count() == 2


def _png_upload(name: str = "photo.png"):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 200)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")
