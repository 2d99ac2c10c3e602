"""Pipeline overhead: submit → final status through a real Celery worker on Redis.

The Replicate-API stand-in (tests/fakes/replicate_api.py) finishes every prediction exactly D
seconds after it was created; everything beyond D is ours: the transaction and enqueue, Redis,
the worker picking the task up, creating the prediction through the real `replicate` client,
polling, copying the output into the S3 API server (moto), thumbnails, the ledger capture.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/pipeline.py [--jobs 50] [--delay 1.0] [--concurrency 5]

It creates its own throw-away database (`<name>_bench`), bucket and broker db, and removes
them at the end. Prints the median/p90 overhead beyond D and the ratio of the median
submit-to-final time to D (the baseline measured in the same run: the provider's own time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ATELIER_VAR_DIR", str(ROOT / "var" / "bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the provider takes (D)")
    parser.add_argument("--concurrency", type=int, default=5, help="worker threads; jobs are sent in waves of this")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a mode after this many seconds")
    parser.add_argument("--modes", nargs="+", default=["webhook", "poll"], choices=["webhook", "poll"])
    parser.add_argument("--broker-db", type=int, default=11, help="Redis database for the broker (flushed)")
    args = parser.parse_args()

    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        print("bench/pipeline.py needs DATABASE_URL (PostgreSQL) and REDIS_URL", file=sys.stderr)
        return 2

    import boto3
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    from tests.fakes.replicate_api import ReplicateAPIServer
    from tests.harness import ServiceProcess, find_executable, free_port
    from tests.worker import broker_url, database_url

    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    setup_test_environment()
    original_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{original_name}_bench"  # never the suite's test DB
    bench_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    port = free_port()
    moto = ServiceProcess(
        "moto_server", [find_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, log_dir=logs
    ).start()
    replicate = ReplicateAPIServer().start()
    results: dict[str, list] = {}
    try:
        bucket = f"atelier-bench-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3", endpoint_url=moto.url, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
        ).create_bucket(Bucket=bucket)
        replicate.script("black-forest-labs/flux-schnell", delay=args.delay)
        settings.REPLICATE_API_TOKEN = replicate.state.token  # so the catalog offers the model here too
        broker = broker_url(os.environ["REDIS_URL"], db=args.broker_db)
        env = {
            "DATABASE_URL": database_url(connection.settings_dict),
            "CELERY_BROKER_URL": broker,
            "REPLICATE_API_TOKEN": replicate.state.token,
            "REPLICATE_BASE_URL": replicate.url,
            "REPLICATE_WEBHOOK_SECRET": replicate.state.webhook_secret,
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_S3_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_S3_REGION_NAME": "us-east-1",
            "LOG_LEVEL": os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
        }
        for mode in args.modes:
            results[mode] = run_mode(mode, args, env=env, broker=broker, logs=logs)
            results[mode] = [(*row, _provider_times(replicate, row[-1])) for row in results[mode]]
    finally:
        replicate.stop()
        moto.stop()
        connection.creation.destroy_test_db(original_name, verbosity=0)

    print(f"pipeline: {args.jobs} jobs per mode, waves of {args.concurrency}, provider time D = {args.delay:.3f} s")
    ok = True
    for mode, rows in results.items():
        ok = report(mode, rows, args.delay, logs) and ok
    print(f"  database used: {bench_db} (dropped)")
    return 0 if ok else 1


def run_mode(mode: str, args, *, env: dict, broker: str, logs: Path) -> list:
    """One mode: "webhook" (production: Replicate calls /webhooks/replicate/ on a gunicorn we
    start, the worker hands off at once) or "poll" (no webhook URL: the worker polls)."""
    import subprocess

    from django.conf import settings

    from billing import services as billing
    from billing.models import LedgerReason
    from config.celery import app
    from generation import services
    from generation.models import Asset, AssetRole, CatalogEntry, Generation
    from tests.factories import UserFactory
    from tests.harness import free_port, wait_for_port
    from tests.worker import WorkerProcess, point_app_at, restore_app

    queue = f"atelier-bench-{uuid.uuid4().hex[:6]}"
    env = {**env, "CELERY_TASK_DEFAULT_QUEUE": queue}
    web = None
    if mode == "webhook":
        port = free_port()
        env["WEBHOOK_BASE_URL"] = f"http://127.0.0.1:{port}"
        web_env = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": "config.settings"}
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--no-control-socket", "--log-level", "warning"],
            cwd=ROOT, env=web_env, stdout=(logs / "web.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(port, proc=web)
    worker = WorkerProcess(env=env, log_path=logs / f"worker-{mode}.log", concurrency=args.concurrency)
    worker.queue = queue
    worker.start()
    saved = point_app_at(app, broker=broker, queue=queue)
    settings.WEBHOOK_BASE_URL = env.get("WEBHOOK_BASE_URL", "")
    try:
        user = UserFactory(email=f"bench-{uuid.uuid4().hex[:6]}@example.com")
        grant = args.jobs * 10
        billing.credits_grant(user=user, amount=grant, reason=LedgerReason.ADMIN_GRANT, idempotency_key=queue)
        entry = CatalogEntry.objects.get(slug="flux-schnell")

        def submit() -> int:
            spec = services.GenerationSpec(model=entry, values={"prompt": "a lighthouse", "seed": 1})
            return services.generation_submit(user=user, spec=spec).pk

        # Warm-up, not measured: first requests import views and open connections in each process.
        # It ends when the pipeline is idle again (thumbnails made too), so no first-use cost of
        # the warm-up's tail lands on the first measured wave.
        warm_started = time.monotonic()
        warm = [submit() for _ in range(args.concurrency)]
        while (
            Generation.objects.filter(pk__in=warm, finished_at__isnull=True).exists()
            or Asset.objects.filter(generation__in=warm, role=AssetRole.THUMBNAIL).count() < len(warm)
        ) and time.monotonic() - warm_started < args.timeout:
            time.sleep(0.05)
        ids: list[int] = []
        started = time.monotonic()
        while len(ids) < args.jobs and time.monotonic() - started < args.timeout:
            wave = []
            for _ in range(min(args.concurrency, args.jobs - len(ids))):
                wave.append(submit())
            while Generation.objects.filter(pk__in=wave, finished_at__isnull=True).exists():
                if time.monotonic() - started > args.timeout:
                    break
                time.sleep(0.02)
            ids += wave
        columns = ("status", "queued_at", "started_at", "finished_at", "provider_prediction_id")
        return list(Generation.objects.filter(pk__in=ids).values_list(*columns))
    finally:
        restore_app(app, saved)
        worker.stop()
        if web is not None:
            web.terminate()
            web.wait(timeout=20)


def _provider_times(replicate, prediction_id: str):
    """When the stand-in created and completed the prediction (its own UTC clock, same machine)."""
    from datetime import datetime

    prediction = replicate.state.predictions.get(prediction_id) or {}
    try:
        return tuple(
            datetime.fromisoformat(prediction[k].replace("Z", "+00:00")) for k in ("created_at", "completed_at")
        )
    except (KeyError, AttributeError, TypeError):
        return None


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms" if values else "n/a"


def report(mode: str, rows: list, delay: float, logs: Path) -> bool:
    ok_rows = [row for row in rows if row[0] == "succeeded" and row[3]]
    done = [(f - q).total_seconds() for _, q, _, f, _, _ in ok_rows]
    pickup = [(s - q).total_seconds() for _, q, s, _, _, _ in ok_rows if s]
    timed = [(q, s, f, p) for _, q, s, f, _, p in ok_rows if s and p]
    create = [(p[0] - s).total_seconds() for q, s, f, p in timed]  # worker start → prediction created
    # D after creation the prediction is done (the stand-in only records it when next read, in poll mode)
    finish = [(f - p[0]).total_seconds() - delay for q, s, f, p in timed]
    with (logs / f"jobs-{mode}.csv").open("w") as out:  # one line per job, for a closer look
        out.write("pickup_ms,create_ms,done_to_final_ms,overhead_ms\n")
        for q, s, f, p in timed:
            parts = ((s - q).total_seconds(), (p[0] - s).total_seconds(), (f - p[0]).total_seconds() - delay)
            out.write(",".join(f"{v * 1000:.0f}" for v in (*parts, (f - q).total_seconds() - delay)) + "\n")
    failed = len(rows) - len(done)
    if not done:
        print(f"  {mode}: no job succeeded ({failed} failed); see {logs}")
        return False
    overhead = sorted(t - delay for t in done)
    median_total = statistics.median(done)
    p90 = overhead[min(len(overhead) - 1, int(len(overhead) * 0.9))]
    print(
        f"  {mode:8} {len(done)} ok, {failed} failed | submit→final median {median_total * 1000:.0f} ms | "
        f"overhead beyond D: median {statistics.median(overhead) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
        f"max {overhead[-1] * 1000:.0f} ms | ratio to D {median_total / delay:.3f}\n"
        f"           medians: queue pickup {_ms(pickup)}, worker start → prediction created {_ms(create)}, "
        f"prediction done (created + D) → job final {_ms(finish)}"
    )
    return failed == 0


if __name__ == "__main__":
    raise SystemExit(main())
