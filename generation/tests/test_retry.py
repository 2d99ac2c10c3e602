"""'Try again' on a failed job: one retry per job, enforced by the database, charged once."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client

from billing import services as billing
from billing.models import LedgerEntry, LedgerReason, Wallet
from generation import services
from generation.errors import NotAllowed
from generation.models import CatalogEntry, Generation, Status
from tests.harness import missing


def failed_job(owner) -> Generation:
    entry = CatalogEntry.objects.get(slug="local-canvas")
    return Generation.objects.create(
        owner=owner,
        model=entry,
        kind=entry.kind,
        prompt="a lighthouse at dusk",
        params={"seed": 7},
        cost=entry.credit_cost,
        status=Status.FAILED,
        error_message="The model failed.",
    )


def fund(user, amount: int) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"r:{user.pk}")


def charges(user) -> int:
    return LedgerEntry.objects.filter(wallet__user=user, reason=LedgerReason.GENERATION).count()


@pytest.mark.django_db
def test_the_database_refuses_a_second_retry_of_the_same_job(alice):
    failed = failed_job(alice)
    Generation.objects.create(owner=alice, model=failed.model, kind=failed.kind, cost=1, retry_of=failed)
    with pytest.raises(IntegrityError), transaction.atomic():
        Generation.objects.create(owner=alice, model=failed.model, kind=failed.kind, cost=1, retry_of=failed)


@pytest.mark.django_db
def test_a_double_click_lands_on_the_same_retry_and_charges_once(client, alice, monkeypatch):
    monkeypatch.setattr(services, "_enqueue", lambda generation_id: None)
    fund(alice, 10)
    failed = failed_job(alice)
    client.force_login(alice)
    first = client.post(f"/g/{failed.uuid}/retry/")
    second = client.post(f"/g/{failed.uuid}/retry/")
    retry = Generation.objects.get(retry_of=failed)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == f"/g/{retry.uuid}/"
    assert charges(alice) == 1
    assert Wallet.objects.get(user=alice).balance == 10 - retry.cost


@pytest.mark.django_db
def test_someone_else_cannot_retry_my_job(alice, bob):
    failed = failed_job(alice)
    fund(bob, 10)
    with pytest.raises(NotAllowed):
        services.generation_retry(user=bob, generation=failed)
    assert not Generation.objects.filter(retry_of=failed).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("credits", [10, 1], ids=["plenty-of-credits", "credits-for-one"])
def test_twenty_parallel_retries_create_one_retry_and_one_charge(alice, monkeypatch, credits):
    if connection.vendor != "postgresql":
        missing("PostgreSQL", "the race needs a real database server (set DATABASE_URL)")
    monkeypatch.setattr(services, "_enqueue", lambda generation_id: None)  # only the charging is under test
    fund(alice, credits)
    failed = failed_job(alice)
    clients = []
    for _ in range(20):
        browser = Client()
        browser.force_login(alice)
        clients.append(browser)
    barrier = threading.Barrier(len(clients))
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def click(browser: Client) -> None:
        try:
            barrier.wait()
            response = browser.post(f"/g/{failed.uuid}/retry/")
            outcome = (response.status_code, response.get("Location", ""))
        except Exception as exc:  # anything else is a bug the test must show
            outcome = (0, repr(exc))
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=click, args=(browser,)) for browser in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    retry = Generation.objects.get(retry_of=failed)
    assert results == [(302, f"/g/{retry.uuid}/")] * 20, results
    assert Generation.objects.filter(owner=alice).count() == 2
    assert charges(alice) == 1
    assert Wallet.objects.get(user=alice).balance == credits - retry.cost
