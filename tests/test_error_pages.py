"""Branded 404, 403 and 500 pages with DEBUG off (as the test client runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import path

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("a bug")


# Used as ROOT_URLCONF by the 500 test: the real URLs plus a view that fails.
urlpatterns = [path("boom/", _boom)]


def test_unknown_url_shows_the_branded_404(client):
    assert settings.DEBUG is False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "We couldn't find that page" in body
    assert 'class="site-header"' in body and "Go to the home page" in body


def test_404_for_a_signed_in_person_offers_the_create_page(client, alice):
    client.force_login(alice)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Go to Create" in response.content.decode()


def test_forbidden_page_is_branded(client):
    """A signed-in person without staff rights who opens the back office's sign-in."""
    client.force_login(UserFactory())
    response = client.get("/admin/login/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "have access to this page" in body
    assert 'class="site-header"' in body


def test_server_error_renders_the_static_500_page(settings):
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert 'href="/static/css/atelier.css"' in body


def test_500_template_has_no_template_tags_and_no_inline_styles_or_scripts():
    """It must render when nothing else works: no tags, no context, and nothing CSP would block."""
    source = (Path(settings.BASE_DIR) / "templates" / "500.html").read_text()
    assert "{%" not in source and "{{" not in source
    assert "<script" not in source and "<style" not in source and not re.search(r"\sstyle=", source)
