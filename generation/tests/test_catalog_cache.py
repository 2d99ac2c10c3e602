"""Each process keeps the enabled catalog entries by slug (the API's submits look a model up by
slug on every call): a change saved by staff must show at once, in every process."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apiv1 import engine
from billing import services as billing
from billing.models import LedgerReason
from generation import catalog, services
from generation.errors import InvalidInput
from generation.models import CatalogEntry, Source

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_copy():
    catalog._entries.forget()
    yield
    catalog._entries.forget()


def test_an_entry_disabled_in_the_admin_is_refused_at_once(alice):
    billing.credits_grant(user=alice, amount=5, reason=LedgerReason.ADMIN_GRANT, idempotency_key="catalog-cache")
    assert services.catalog_entry_available("local-canvas").slug == "local-canvas"
    entry = CatalogEntry.objects.get(slug="local-canvas")
    entry.enabled = False
    entry.save()  # what the admin does
    assert services.catalog_entry_available("local-canvas") is None
    with pytest.raises(InvalidInput) as caught:
        engine.generation_create(user=alice, model="local-canvas", prompt="a fox", source=Source.API)
    assert caught.value.field == "model"


def test_a_change_saved_by_another_process_is_seen_within_a_second(django_assert_num_queries, monkeypatch):
    assert catalog.enabled_entry("local-canvas").credit_cost == 1
    with django_assert_num_queries(0):  # kept: no query while nothing changed
        catalog.enabled_entry("local-canvas")
    # Another process saved: the row changed and the shared token was replaced there.
    CatalogEntry.objects.filter(slug="local-canvas").update(credit_cost=3)
    cache.set(catalog.ENTRIES_VERSION_KEY, "another process saved", None)
    assert catalog.enabled_entry("local-canvas").credit_cost == 1  # checked the token < 1 s ago
    monkeypatch.setattr(catalog, "VERSION_CHECK_SECONDS", 0.0)  # a second later
    assert catalog.enabled_entry("local-canvas").credit_cost == 3


def test_a_write_that_skips_the_signals_is_seen_within_the_max_age(monkeypatch):
    assert catalog.enabled_entry("local-canvas") is not None
    CatalogEntry.objects.filter(slug="local-canvas").update(enabled=False)
    monkeypatch.setattr(catalog, "ENTRIES_MAX_AGE", 0.0)
    assert catalog.enabled_entry("local-canvas") is None


def test_each_caller_gets_its_own_instance():
    first = catalog.enabled_entry("local-canvas")
    first.title = "changed by a caller"
    assert catalog.enabled_entry("local-canvas").title != "changed by a caller"
    assert catalog.enabled_entry("no-such-model") is None and catalog.enabled_entry("") is None
