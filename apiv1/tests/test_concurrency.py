"""On PostgreSQL, with real commits: concurrent POSTs with one Idempotency-Key make one job and
one charge, and `Prefer: wait` answers 200 with the finished result."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from apiv1.tests.conftest import bearer
from billing.models import LedgerEntry, LedgerReason, Wallet
from generation.models import Generation, Status

ROUNDS = 4
THREADS = 4


@pytest.mark.django_db(transaction=True)
def test_parallel_posts_with_one_idempotency_key_make_one_job_and_one_charge(key, funded):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks and unique index waits")
    answers: dict[str, list] = {}

    def call(idempotency_key: str, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=10)
            response = Client().post(
                "/api/v1/generations",
                {"model": "local-canvas", "prompt": "a lighthouse at dusk"},
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=idempotency_key,
                **bearer(key),
            )
            answers.setdefault(idempotency_key, []).append(
                (response.status_code, response.json().get("id"), response.headers.get("Idempotent-Replayed"))
            )
        finally:
            connection.close()

    for round_ in range(ROUNDS):
        idempotency_key = f"retry-{round_}"
        barrier = threading.Barrier(THREADS)
        threads = [threading.Thread(target=call, args=(idempotency_key, barrier)) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        results = answers[idempotency_key]
        assert len(results) == THREADS
        assert {status for status, _, _ in results} == {202}, results
        assert len({generation_id for _, generation_id, _ in results}) == 1, results
        assert sorted(replayed or "" for _, _, replayed in results) == [""] + ["true"] * (THREADS - 1)

    assert Generation.objects.filter(owner=funded).count() == ROUNDS
    charges = LedgerEntry.objects.filter(wallet__user=funded, reason=LedgerReason.GENERATION, amount__lt=0)
    assert charges.count() == ROUNDS
    assert Wallet.objects.get(user=funded).balance == 10 - ROUNDS


@pytest.mark.django_db(transaction=True)
def test_prefer_wait_answers_200_with_the_finished_result(key, funded):
    response = Client().post(
        "/api/v1/generations",
        {"model": "local-canvas", "prompt": "a red fox", "aspect_ratio": "1:1"},
        content_type="application/json",
        HTTP_PREFER="wait=100",  # clamped to 40
        **bearer(key),
    )
    assert response.status_code == 200, response.content
    assert response["Preference-Applied"] == "wait=40" and "Location" not in response
    body = response.json()
    assert body["status"] == "succeeded" and body["outputs"][0]["width"] == 768
    assert Generation.objects.get(uuid=body["id"]).status == Status.SUCCEEDED
    assert Wallet.objects.get(user=funded).balance == 9

    same = Client().get(f"/api/v1/generations/{body['id']}?wait=5", **bearer(key))
    assert same.status_code == 200 and same.json()["status"] == "succeeded"
