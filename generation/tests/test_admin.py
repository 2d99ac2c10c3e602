"""The back office for generations: lists, filters, search, and the retry and refund actions."""

from __future__ import annotations

import pytest

from billing import services as billing
from billing.models import LedgerReason, Wallet
from generation import services
from generation.models import CatalogEntry, Generation, Status
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(email="staff@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def finished(alice, django_capture_on_commit_callbacks):
    billing.credits_grant(user=alice, amount=5, reason=LedgerReason.ADMIN_GRANT, idempotency_key="adm")
    spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug="local-canvas"), values={"prompt": "a blue owl"})
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.generation_submit(user=alice, spec=spec)
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    return generation


def test_staff_find_generations_by_prompt_and_email_and_filter_by_status(staff_client, finished):
    by_prompt = staff_client.get("/admin/generation/generation/", {"q": "blue owl"})
    assert by_prompt.status_code == 200 and str(finished.uuid) in by_prompt.content.decode()
    by_email = staff_client.get("/admin/generation/generation/", {"q": "alice@example.com"})
    assert str(finished.uuid) in by_email.content.decode()
    failed_only = staff_client.get("/admin/generation/generation/", {"status__exact": "failed"})
    assert str(finished.uuid) not in failed_only.content.decode()
    assert staff_client.get(f"/admin/generation/generation/{finished.pk}/change/").status_code == 200


def test_refund_action_gives_the_credits_back_once(staff_client, finished, alice):
    assert Wallet.objects.get(user=alice).balance == 4
    for _ in range(2):
        response = staff_client.post(
            "/admin/generation/generation/",
            {"action": "refund_generations", "_selected_action": [finished.pk]},
            follow=True,
        )
        assert response.status_code == 200
    assert Wallet.objects.get(user=alice).balance == 5


def test_retry_action_queues_a_new_job_charged_to_the_owner(
    staff_client, finished, alice, django_capture_on_commit_callbacks
):
    Generation.objects.filter(pk=finished.pk).update(status=Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/generation/generation/", {"action": "retry_generations", "_selected_action": [finished.pk]}
        )
    assert response.status_code == 302
    retry = Generation.objects.get(retry_of=finished)
    assert retry.status == Status.SUCCEEDED and retry.owner == alice
    assert Wallet.objects.get(user=alice).balance == 3


def test_the_ledger_is_read_only_for_staff(staff_client, alice):
    billing.credits_grant(user=alice, amount=3, reason=LedgerReason.ADMIN_GRANT, idempotency_key="ro")
    wallet = Wallet.objects.get(user=alice)
    assert staff_client.get("/admin/billing/ledgerentry/").status_code == 200
    assert staff_client.get("/admin/billing/ledgerentry/add/").status_code == 403
    assert staff_client.get(f"/admin/billing/wallet/{wallet.pk}/change/").status_code == 200


def test_refund_of_a_job_that_is_still_running_is_refused(staff_client, alice):
    billing.credits_grant(user=alice, amount=5, reason=LedgerReason.ADMIN_GRANT, idempotency_key="run")
    spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug="local-canvas"), values={"prompt": "later"})
    generation = services.generation_submit(user=alice, spec=spec)  # never run: still queued
    staff_client.post(
        "/admin/generation/generation/", {"action": "refund_generations", "_selected_action": [generation.pk]}
    )
    assert Wallet.objects.get(user=alice).balance == 4  # still reserved, not handed back for free
