"""Concurrent submits can never overspend: the wallet row lock and the guarded update hold."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.db.models import Sum

from billing import services as billing
from billing.errors import InsufficientCredits
from billing.models import LedgerEntry, LedgerReason, Wallet
from generation import services
from generation.models import CatalogEntry, Generation
from tests.harness import missing

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_concurrent_submits_on_a_wallet_for_twenty(alice, monkeypatch):
    if connection.vendor != "postgresql":
        missing("PostgreSQL", "row locks need a real database server (set DATABASE_URL)")
    monkeypatch.setattr(services, "_enqueue", lambda generation_id: None)  # only the charging is under test
    billing.credits_grant(user=alice, amount=20, reason=LedgerReason.ADMIN_GRANT, idempotency_key="c")
    entry = CatalogEntry.objects.get(slug="local-canvas")
    barrier = threading.Barrier(50)
    results: list[str] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        try:
            barrier.wait()
            spec = services.GenerationSpec(model=entry, values={"prompt": f"job {n}"})
            services.generation_submit(user=alice, spec=spec)
            outcome = "ok"
        except InsufficientCredits:
            outcome = "refused"
        except Exception as exc:  # anything else is a bug the test must show
            outcome = f"error: {exc!r}"
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(set(results)) == ["ok", "refused"], results
    assert results.count("ok") == 20
    assert Generation.objects.filter(owner=alice).count() == 20
    wallet = Wallet.objects.get(user=alice)
    assert wallet.balance == 0
    assert LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"] == 0
    assert LedgerEntry.objects.filter(wallet=wallet).count() == 21
