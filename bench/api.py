"""API v1 against a bare JSON view behind the same auth, under gunicorn, on PostgreSQL.

One person has 10,000 generations (and ten others 10,000 each); the person holds an API key with
the read and generate scopes and enough credits for every job the bench starts. A gunicorn (two
sync workers on this 2-core machine, DEBUG off) serves the site plus two bare views:

- bare-post  POST /bench/bare/  `return JsonResponse({})` behind the generate-scope Bearer auth
- create     POST /api/v1/generations  the offline text-to-image model; the job is queued (no
             worker runs: the broker keeps it), not waited for
- bare-get   GET  /bench/bare/  the same view behind the read-scope auth
- list       GET  /api/v1/generations  the first page of the 10,000

Each is driven by --clients threads for --requests requests (after a warm-up), the four
interleaved batch by batch so drift in the machine's load touches all alike; the bench prints
requests per second and each endpoint's throughput as a ratio of its bare view's (goal: ≥ 0.5),
and the SQL queries of one list request (goal: ≤ 8), counted in this process on the same data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atelier REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/api.py [--requests 600] [--clients 4] [--per-user 10000] [--broker-db 12]

It creates its own database (`atelier_bench_api`) and drops it at the end, whatever happens. With
REDIS_URL the queued jobs go to Redis database --broker-db, flushed before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ATELIER_VAR_DIR", str(ROOT / "var" / "bench"))

DB_NAME = "atelier_bench_api"
BATCH = 5_000
MODEL = "local-canvas"  # the offline text-to-image model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-user", type=int, default=10_000, help="generations of the person measured")
    parser.add_argument("--others", type=int, default=10, help="other people, each with --per-user generations")
    parser.add_argument("--requests", type=int, default=600, help="measured requests per endpoint")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--batch", type=int, default=50, help="requests per endpoint before switching to the next")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=0, help="threads per worker (gthread, as the image runs: 8); 0 = sync workers"
    )
    parser.add_argument("--broker-db", type=int, default=12, help="Redis database the queued jobs go to")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/api.py needs DATABASE_URL (PostgreSQL)", file=sys.stderr)
        return 2
    broker = ""
    if os.environ.get("REDIS_URL"):
        broker = os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{args.broker_db}"
        os.environ["CELERY_BROKER_URL"] = broker

    import django

    django.setup()
    from bench.serving import gunicorn, throwaway_database

    workers = ["--workers", str(args.workers)]
    if args.threads:
        workers += ["--worker-class", "gthread", "--threads", str(args.threads)]
    _flush(broker)
    with throwaway_database(DB_NAME):
        try:
            started = time.monotonic()
            person, token = populate(args)
            print(f"api: populated in {time.monotonic() - started:.0f} s")
            queries = count_queries(token)
            with gunicorn("bench.api_settings", log="api-web.log", args=workers) as port:
                check(port, token)
                before = _queued(person)
                rates = measure(port, token, args)
                made = _queued(person) - before
        finally:
            _flush(broker)
    report(args, rates, queries, made)
    print(f"  database used: {DB_NAME} (dropped)")
    return 0


def _flush(broker: str) -> None:
    if broker:
        import redis

        redis.Redis.from_url(broker).flushdb()


def _queued(person) -> int:
    from generation.models import Generation

    return Generation.objects.filter(owner=person).count()


def populate(args):
    """The people, their histories, the measured person's credits and API key."""
    import random

    from accounts.services import api_key_create
    from billing.models import LedgerReason
    from billing.services.ledger import credits_grant
    from generation.models import Asset, AssetRole, CatalogEntry, Generation, Kind, Status
    from tests.factories import UserFactory

    rng = random.Random(7)
    entries = {kind: list(CatalogEntry.objects.filter(kind=kind)) for kind in Kind.values}
    person = UserFactory(email="measured@example.com")
    people = [person] + [UserFactory(email=f"other{i}@example.com") for i in range(args.others)]
    for owner in people:
        made = 0
        while made < args.per_user:
            rows = []
            for i in range(min(BATCH, args.per_user - made)):
                kind = rng.choice(Kind.values)
                entry = rng.choice(entries[kind])
                rows.append(
                    Generation(
                        owner=owner, model=entry, kind=kind, prompt=f"a lighthouse at dusk, study {made + i}",
                        cost=entry.credit_cost, status=Status.SUCCEEDED, params={"aspect_ratio": "1:1"},
                    )
                )  # fmt: skip
            rows = Generation.objects.bulk_create(rows)
            Asset.objects.bulk_create(
                [
                    Asset(
                        generation=row, role=AssetRole.OUTPUT, index=0, mime_type="image/png", bytes=200_000,
                        sha256="0" * 64, width=1024, height=1024,
                        storage_key=f"users/{owner.public_id}/generations/{row.uuid}/output-0.png",
                    )
                    for row in rows
                ]
            )  # fmt: skip
            made += len(rows)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE generation_generation SET queued_at = now() - random() * interval '365 days'")
        cursor.execute("VACUUM ANALYZE generation_generation")
        cursor.execute("VACUUM ANALYZE generation_asset")
    credits_grant(user=person, amount=10_000_000, reason=LedgerReason.ADMIN_GRANT, idempotency_key="bench-api-credits")
    _, token = api_key_create(user=person, name="bench", scopes=["read", "generate"])
    return person, token


def count_queries(token: str) -> int:
    """SQL queries of one list request, in this process (same code, same database), warm."""
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    client = Client()
    with override_settings(ROOT_URLCONF="bench.api_urls"):
        client.get("/api/v1/generations", HTTP_AUTHORIZATION=f"Bearer {token}")
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/api/v1/generations", HTTP_AUTHORIZATION=f"Bearer {token}")
    if response.status_code != 200:
        raise RuntimeError(f"/api/v1/generations: HTTP {response.status_code} {response.content[:300]!r}")
    return len(captured.captured_queries)


BODY = json.dumps({"model": MODEL, "prompt": "a lighthouse at dusk, oil on canvas"}).encode()
ENDPOINTS = {
    "bare-post": ("POST", "/bench/bare/", BODY, 200),
    "create": ("POST", "/api/v1/generations", BODY, 202),
    "bare-get": ("GET", "/bench/bare/", None, 200),
    "list": ("GET", "/api/v1/generations", None, 200),
}
BASELINE = {"create": "bare-post", "list": "bare-get"}


def _call(port: int, token: str, name: str) -> None:
    method, path, body, expected = ENDPOINTS[name]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    content = response.read()
    conn.close()
    if response.status != expected:
        raise RuntimeError(f"{name} {path}: HTTP {response.status} (expected {expected}) {content[:300]!r}")


def check(port: int, token: str) -> None:
    """Every endpoint answers as expected once, and the list really lists."""
    for name in ENDPOINTS:
        _call(port, token, name)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/api/v1/generations", headers={"Authorization": f"Bearer {token}"})
    data = json.loads(conn.getresponse().read())
    conn.close()
    items = data.get("items") if isinstance(data, dict) else data
    if not items:
        raise RuntimeError(f"/api/v1/generations listed nothing: {str(data)[:300]}")


def _run(port: int, token: str, name: str, count: int, clients: int) -> float:
    """`count` requests to one endpoint from `clients` threads; returns the wall time."""
    remaining = [count]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if remaining[0] <= 0 or errors:
                    return
                remaining[0] -= 1
            try:
                _call(port, token, name)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def measure(port: int, token: str, args) -> dict[str, list[float]]:
    """Requests per second of each endpoint, batch by batch, the endpoints interleaved."""
    for name in ENDPOINTS:
        _run(port, token, name, args.warmup, args.clients)
    rates: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    for _ in range(max(1, args.requests // args.batch)):
        for name in ENDPOINTS:
            rates[name].append(args.batch / _run(port, token, name, args.batch, args.clients))
    return rates


def report(args, rates: dict[str, list[float]], queries: int, made: int) -> None:
    print(
        f"api: {args.per_user:,} generations measured, {args.others * args.per_user:,} of {args.others} others; "
        f"{args.requests} requests per endpoint from {args.clients} clients, gunicorn {args.workers} "
        f"{f'gthread workers × {args.threads} threads' if args.threads else 'sync workers'}; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, median in medians.items():
        line = f"  {name:9} median {median:7.1f} req/s (batches of {args.batch}: min {min(rates[name]):.1f})"
        if name in BASELINE:
            line += f"  ratio to {BASELINE[name]} {median / medians[BASELINE[name]]:.2f} (goal ≥ 0.5)"
        print(line)
    print(f"  list: {queries} SQL queries per request (goal ≤ 8)")
    print(f"  jobs queued by the measured POSTs (warm-up and check included): {made}")


if __name__ == "__main__":
    raise SystemExit(main())
