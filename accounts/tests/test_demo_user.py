"""`ensure_demo_user` (run by `make run`): the demo account starts with finished samples."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.models import User
from billing.selectors import balance_of
from generation.models import AssetRole, CatalogEntry, Generation, Kind, Status

# Committed transactions, as when `make run` calls the command: jobs queue on commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_eager():
    """As under `make run` with a broker: tasks are not inline unless the command makes them so."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield app
    app.conf.task_always_eager = before


def test_demo_account_gets_finished_samples_of_every_kind_once(settings, no_eager):
    call_command("ensure_demo_user")
    demo = User.objects.get(email=settings.DEMO_USER_EMAIL)
    samples = list(Generation.objects.filter(owner=demo).select_related("model"))

    assert len(samples) == 5
    assert {g.status for g in samples} == {Status.SUCCEEDED}
    assert sorted(g.kind for g in samples) == sorted([Kind.TEXT_TO_IMAGE] * 3 + [Kind.IMAGE_TO_IMAGE, Kind.IMAGE_TO_3D])
    assert {g.model.provider for g in samples} == {"local"}
    for generation in samples:
        roles = set(generation.assets.values_list("role", flat=True))
        assert AssetRole.OUTPUT in roles and AssetRole.THUMBNAIL in roles, generation.model.slug
    spent = sum(g.cost for g in samples)
    assert balance_of(user=demo) == settings.FREE_CREDITS_ON_SIGNUP + 100 - spent
    assert no_eager.conf.task_always_eager is False  # put back as it was

    call_command("ensure_demo_user")  # idempotent: no second set, no second charge
    assert Generation.objects.filter(owner=demo).count() == 5
    assert balance_of(user=demo) == settings.FREE_CREDITS_ON_SIGNUP + 100 - spent


def test_no_samples_when_the_offline_models_are_off(settings):
    CatalogEntry.objects.filter(provider="local").update(enabled=False)
    call_command("ensure_demo_user")
    demo = User.objects.get(email=settings.DEMO_USER_EMAIL)
    assert not Generation.objects.filter(owner=demo).exists()


def test_demo_samples_show_on_the_create_page(client, settings):
    call_command("ensure_demo_user")
    client.post("/accounts/login/", {"login": settings.DEMO_USER_EMAIL, "password": settings.DEMO_USER_PASSWORD})
    body = client.get("/create/").content.decode()
    assert "a lighthouse at dawn" in body
