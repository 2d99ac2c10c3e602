"""The cookie notice, the choice cookie, the cookie page, and page-view counts only with consent."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from privacy import cookies
from privacy.models import ConsentEvent, ConsentMethod, PageViewCount

pytestmark = pytest.mark.django_db

NOTICE = 'id="cookie-notice"'


def test_first_visit_shows_the_notice_with_two_equal_buttons(client):
    page = client.get("/").content.decode()
    assert NOTICE in page
    essential = (
        '<button type="submit" name="choice" value="essential" class="btn btn-secondary">Essential only</button>'
    )
    analytics = (
        '<button type="submit" name="choice" value="analytics" class="btn btn-secondary">Allow analytics</button>'
    )
    assert essential in page and analytics in page
    assert 'href="/privacy/cookies/"' in page


def test_signed_in_people_see_it_too(client, alice):
    client.force_login(alice)
    assert NOTICE in client.get("/create/").content.decode()


@pytest.mark.parametrize("choice", ["essential", "analytics"])
def test_a_choice_sets_the_cookie_and_hides_the_notice(client, choice):
    response = client.post("/privacy/cookies/choice/", {"choice": choice, "next": "/pricing/"})
    assert response.status_code == 302 and response["Location"] == "/pricing/"
    morsel = response.cookies[cookies.COOKIE_NAME]
    assert morsel.value == f"{choice}:{cookies.NOTICE_VERSION}"
    assert 180 * 86400 <= int(morsel["max-age"]) <= 366 * 86400
    assert morsel["samesite"] == "Lax"
    assert morsel["httponly"]
    assert NOTICE not in client.get("/").content.decode()


def test_the_cookie_is_secure_in_production(client, settings):
    settings.SESSION_COOKIE_SECURE = True
    response = client.post("/privacy/cookies/choice/", {"choice": "essential"})
    assert response.cookies[cookies.COOKIE_NAME]["secure"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_the_redirect_back_stays_on_this_site(client, target):
    response = client.post("/privacy/cookies/choice/", {"choice": "essential", "next": target})
    assert response["Location"] == "/"


def test_htmx_choice_swaps_the_notice_away(client):
    response = client.post("/privacy/cookies/choice/", {"choice": "analytics"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response.content == b""
    assert response.cookies[cookies.COOKIE_NAME].value.startswith("analytics:")


def test_an_old_notice_version_asks_again(client):
    client.cookies[cookies.COOKIE_NAME] = "analytics:2020-01-01"
    assert NOTICE in client.get("/").content.decode()
    client.get("/pricing/")
    assert not PageViewCount.objects.exists()


def test_a_signed_in_choice_is_recorded_as_a_consent_event(client, alice):
    client.force_login(alice)
    client.post("/privacy/cookies/choice/", {"choice": "essential"})
    client.post("/privacy/cookies/choice/", {"choice": "analytics"})
    events = list(ConsentEvent.objects.filter(user=alice).order_by("at", "id"))
    assert [(e.kind, e.granted, e.method) for e in events] == [
        ("analytics", False, ConsentMethod.COOKIE_NOTICE),
        ("analytics", True, ConsentMethod.COOKIE_NOTICE),
    ]


def test_an_unknown_choice_is_refused(client):
    response = client.post("/privacy/cookies/choice/", {"choice": "everything"})
    assert response.status_code == 400
    assert cookies.COOKIE_NAME not in response.cookies


# --- the cookie page ----------------------------------------------------------------------------


def test_cookie_page_lists_every_cookie_the_settings_name(client):
    page = client.get("/privacy/cookies/").content.decode()
    for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, "messages", cookies.COOKIE_NAME):
        assert f"<code>{name}</code>" in page
    assert NOTICE not in page  # the page has the choice itself
    assert "Not chosen yet" in page


def test_cookie_page_lets_people_change_their_mind(client):
    client.post("/privacy/cookies/choice/", {"choice": "analytics", "next": "/privacy/cookies/"})
    assert "Analytics allowed" in client.get("/privacy/cookies/").content.decode()
    response = client.post(
        "/privacy/cookies/choice/", {"choice": "essential", "next": "/privacy/cookies/"}, follow=True
    )
    page = response.content.decode()
    assert "Cookie choice saved: Essential cookies only" in page
    assert '<span class="badge">Essential only</span>' in page


# --- analytics -------------------------------------------------------------------------------------


def visit(client, *paths, **headers) -> None:
    for path in paths:
        client.get(path, **headers)


def test_no_consent_no_counts(client):
    visit(client, "/", "/pricing/", "/privacy/cookies/")
    client.post("/privacy/cookies/choice/", {"choice": "essential"})
    visit(client, "/", "/pricing/")
    assert not PageViewCount.objects.exists()


def test_with_consent_page_views_are_counted_per_route(client, alice):
    client.post("/privacy/cookies/choice/", {"choice": "analytics"})
    visit(client, "/", "/", "/pricing/")
    counts = {row.path: row.views for row in PageViewCount.objects.all()}
    assert counts == {"/": 2, "/pricing/": 1}


def test_only_successful_html_pages_count(client, alice):
    from generation.models import CatalogEntry, Generation

    client.force_login(alice)
    client.post("/privacy/cookies/choice/", {"choice": "analytics"})
    PageViewCount.objects.all().delete()
    entry = CatalogEntry.objects.get(slug="local-canvas")
    job = Generation.objects.create(owner=alice, model=entry, kind=entry.kind, prompt="x", cost=1)
    visit(client, f"/g/{job.uuid}/")  # a page: counted by its route, never by the job's id
    visit(client, f"/g/{job.uuid}/status/", HTTP_HX_REQUEST="true")  # htmx fragment
    visit(client, "/no-such-page/", "/healthz", "/api/v1/me", "/admin/", "/static/css/atelier.css")
    client.post("/privacy/choices/pause/")
    counts = {row.path: row.views for row in PageViewCount.objects.all()}
    assert counts == {"/g/<uuid:uuid>/": 1}
    assert str(job.uuid) not in str(counts)


def test_counts_carry_no_person(client, alice):
    client.force_login(alice)
    client.post("/privacy/cookies/choice/", {"choice": "analytics"})
    visit(client, "/privacy/")
    row = PageViewCount.objects.get()
    assert {f.name for f in PageViewCount._meta.get_fields()} == {"id", "day", "path", "views"}
    assert row.path == "/privacy/"


def test_page_view_count_adds_up_under_repeats():
    for _ in range(5):
        cookies.page_view_count(path="/x/")
    assert PageViewCount.objects.get(path="/x/").views == 5


def test_staff_see_counts_read_only_in_admin(alice):
    from tests.factories import UserFactory

    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    cookies.page_view_count(path="/pricing/")
    admin = Client()
    admin.force_login(staff)
    listing = admin.get("/admin/privacy/pageviewcount/")
    assert listing.status_code == 200 and b"/pricing/" in listing.content
    assert admin.get("/admin/privacy/pageviewcount/add/").status_code == 403
    assert Client().get("/admin/privacy/pageviewcount/").status_code == 302  # not for visitors
