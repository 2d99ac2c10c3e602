"""The header on every page: the credit balance for signed-in people, at one cheap query."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import LedgerReason
from billing.services import credits_grant

pytestmark = pytest.mark.django_db


def wallet_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "billing_wallet" in q["sql"]]


def header_of(body: str) -> str:
    return re.search(r'<header class="site-header">.*?</header>', body, re.S).group(0)


def test_signed_in_header_shows_the_balance_for_one_query(client, alice):
    credits_grant(user=alice, amount=1234, reason=LedgerReason.ADMIN_GRANT, idempotency_key="header-test")
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("accounts:profile"))
    header = header_of(response.content.decode())
    assert "<strong>1,234</strong> credits" in header
    assert len(wallet_queries(queries)) == 1


def test_one_credit_is_singular(client, alice):
    credits_grant(user=alice, amount=1, reason=LedgerReason.ADMIN_GRANT, idempotency_key="header-one")
    client.force_login(alice)
    header = header_of(client.get(reverse("accounts:profile")).content.decode())
    assert "<strong>1</strong> credit</a>" in header


def test_visitors_cost_no_wallet_query_and_see_no_balance(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("landing"))
    assert wallet_queries(queries) == []
    assert "nav-credits" not in header_of(response.content.decode())


def test_phone_menu_holds_the_same_links_in_a_details_element(client, alice):
    client.force_login(alice)
    header = header_of(client.get(reverse("accounts:profile")).content.decode())
    menu = re.search(r'<details class="nav-menu">.*?</details>', header, re.S).group(0)
    for href in (
        reverse("generation:create"),
        reverse("billing:overview"),
        reverse("pricing"),
        reverse("accounts:profile"),
    ):
        assert f'href="{href}"' in menu
    assert "Sign out" in menu
    assert "<script" not in header  # CSP: the menu works without any script
