"""Export ("Download my data") against a bucket-to-bucket copy, on PostgreSQL and an S3 API server.

One person has --generations generations (default 5,000) whose outputs add up to --total-mb of
media (default 1,024 MB, one file per generation, incompressible bytes) in a moto S3 server on
127.0.0.1. The bench measures, in the same run:

- copy    boto3 `copy_object` of the same objects into a second bucket, one after another (twice:
          before and after the export; the mean is the baseline)
- export  `export_build` of that person, run in a child process of its own (so its peak RSS is
          the export's, not the bench's), streaming the ZIP back into the bucket by multipart upload
- small   a second person with --small-items generations of the same file size: the time from
          `export_request` to the export being ready (its build also in a child process)

and prints the export's time, its ratio to the copy (goal ≤ 1.5), the child's peak RSS (goal
≤ 150 MB) and the small account's time to ready (goal ≤ 60 s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atelier \
        .venv/bin/python bench/export.py [--generations 5000] [--total-mb 1024] [--small-items 1000]

It creates its own database (`atelier_bench_export`) and drops it at the end, whatever happens;
moto runs on 127.0.0.1 only and is stopped at the end. Every child has a time limit (--timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ATELIER_VAR_DIR", str(ROOT / "var" / "bench"))

DB_NAME = "atelier_bench_export"
MEDIA_BUCKET = "atelier-bench-media"
COPY_BUCKET = "atelier-bench-copy"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def storage_env(endpoint: str) -> dict[str, str]:
    """What config/settings.py reads to use the S3 storage (parent and children alike)."""
    return {
        "AWS_STORAGE_BUCKET_NAME": MEDIA_BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_REGION_NAME": "us-east-1",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "CELERY_BROKER_URL": "memory://",
    }


# --- the child: one export build, its own peak RSS ---------------------------------------------------


def child(export_id: int) -> int:
    import django

    django.setup()
    from django.core.files.storage import default_storage

    from privacy.services import export as service
    from privacy.services.export import export_build

    # Experiments: BENCH_EXPORT_SET="PREFETCH=2,UPLOADS_IN_FLIGHT=1" overrides the service's knobs.
    for pair in filter(None, os.environ.get("BENCH_EXPORT_SET", "").split(",")):
        name, value = pair.split("=")
        setattr(service, name.strip(), int(value))
    if os.environ.get("BENCH_EXPORT_TRACE"):
        trace_memory(service)
    default_storage.connection  # noqa: B018 - the S3 client, as a worker that stored files has it
    before = peak_rss_kib()
    started = time.perf_counter()
    if os.environ.get("BENCH_EXPORT_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        export = profiler.runcall(export_build, export_id=export_id)
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(30)
    else:
        export = export_build(export_id=export_id)
    elapsed = time.perf_counter() - started
    peak = peak_rss_kib()
    print(json.dumps({
        "seconds": elapsed, "peak_rss_kib": peak, "rss_before_kib": before,
        "status": export.status if export else None, "size": export.size_bytes if export else 0,
        "files": export.files_total if export else 0, "error": export.error if export else "",
    }))  # fmt: skip
    return 0 if export is not None and export.status == "ready" else 1


def trace_memory(service) -> None:
    """Print the resident and peak memory after each step of the build (to find what costs)."""

    def status() -> str:
        with open("/proc/self/status") as handle:
            values = dict(line.split(":", 1) for line in handle)
        return f"rss {int(values['VmRSS'].split()[0]) // 1024} MiB, peak {int(values['VmHWM'].split()[0]) // 1024} MiB"

    def wrap(name):
        real = getattr(service, name)
        calls = [0]

        def traced(*args, **kwargs):
            result = real(*args, **kwargs)
            calls[0] += 1
            if calls[0] in (1, 2, 10) or calls[0] % 500 == 0:
                print(f"trace {name} #{calls[0]}: {status()}", file=sys.stderr)
            return result

        setattr(service, name, traced)

    for name in ("_plan", "_copy_media", "_write_text", "_open_writer"):
        wrap(name)


def peak_rss_kib() -> int:
    """This process's peak resident set size (VmHWM). Not getrusage's ru_maxrss: on Linux that
    survives exec, so a child started by a big parent would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(export_id: int, env: dict, timeout: float) -> dict:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(export_id)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the export child failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    figures = json.loads(lines[-1])
    if os.environ.get("BENCH_EXPORT_PROFILE") or os.environ.get("BENCH_EXPORT_TRACE"):
        print(result.stderr[-12000:])
    if figures["status"] != "ready":
        raise RuntimeError(f"the export did not finish: {figures}\n{result.stderr[-3000:]}")
    return figures


# --- the parent --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=5_000, help="generations of the big account")
    parser.add_argument("--total-mb", type=float, default=1024, help="media of the big account, MB (MiB)")
    parser.add_argument("--small-items", type=int, default=1_000, help="generations of the account timed to ready")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds any one export may take")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/export.py needs DATABASE_URL (PostgreSQL)", file=sys.stderr)
        return 2

    from tests.harness import ServiceProcess, find_executable, free_port

    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    exe = find_executable("moto_server")
    if exe is None:
        print("bench/export.py needs moto_server (pip install 'moto[server]')", file=sys.stderr)
        return 2
    port = free_port()
    moto = ServiceProcess("moto_server", [exe, "-H", "127.0.0.1", "-p", str(port)], port, log_dir=logs)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(storage_env(endpoint))  # before Django reads its settings

    import django

    django.setup()
    from bench.serving import throwaway_database
    from tests.worker import database_url

    try:
        with throwaway_database(DB_NAME) as connection:
            env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict), "PYTHONPATH": str(ROOT)}
            figures = run(args, endpoint, env)
    finally:
        moto.stop()
    report(args, figures)
    print(f"  database used: {DB_NAME} (dropped); S3 API server on 127.0.0.1:{port} (stopped)")
    return 0


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, config=Config(max_pool_connections=16), **CREDENTIALS)


def run(args, endpoint: str, env: dict) -> dict:
    from privacy.models import DataExport, ExportStatus

    client = s3_client(endpoint)
    for bucket in (MEDIA_BUCKET, COPY_BUCKET):
        client.create_bucket(Bucket=bucket)
    size = int(args.total_mb * 1024 * 1024 / args.generations)

    started = time.monotonic()
    big, keys = populate(client, "big@example.com", args.generations, size)
    print(f"export bench: {args.generations:,} generations, {len(keys):,} files of {size / 1024:.0f} KiB "
          f"({len(keys) * size / 2**20:,.0f} MiB) stored in {time.monotonic() - started:.0f} s")  # fmt: skip

    copies = [copy_all(client, keys)]
    print(f"  copy (copy_object, bucket to bucket): {copies[0]:.1f} s")
    export = DataExport.objects.create(user=big)
    big_run = run_child(export.pk, env, args.timeout)
    print(f"  export: {big_run['seconds']:.1f} s, peak RSS {big_run['peak_rss_kib'] / 1024:.0f} MiB")
    copies.append(copy_all(client, keys))
    print(f"  copy again: {copies[1]:.1f} s")
    export.refresh_from_db()
    check_zip(client, export, len(keys))

    small, small_keys = populate(client, "small@example.com", args.small_items, size)
    from privacy.services.export import export_request

    requested = time.perf_counter()
    # As the site asks for it; the task it queues on commit is the child below (this process runs
    # tasks inline, which would build the export here, unmeasured).
    with mock.patch("privacy.tasks.export.build_export.delay") as queued:
        small_export = export_request(user=small)
    assert queued.call_args.args == (small_export.pk,)
    small_run = run_child(small_export.pk, env, args.timeout)
    small_export.refresh_from_db()
    ready_after = (small_export.finished_at - small_export.requested_at).total_seconds()
    assert small_export.status == ExportStatus.READY
    wall = time.perf_counter() - requested
    return {
        "size": size, "files": len(keys), "media_bytes": len(keys) * size, "copies": copies, "big": big_run,
        "zip_bytes": export.size_bytes, "small": small_run, "small_files": len(small_keys),
        "small_ready_seconds": ready_after, "small_wall": wall,
    }  # fmt: skip


def populate(client, email: str, n: int, size: int):
    """A person with n finished generations, each with one output of `size` bytes in the bucket
    (and a thumbnail row, which the export lists but does not copy)."""
    import random

    from django.utils import timezone

    from generation.models import Asset, AssetRole, CatalogEntry, Generation, Kind, Status
    from tests.factories import UserFactory

    rng = random.Random(5)
    person = UserFactory(email=email)
    entry = CatalogEntry.objects.filter(kind=Kind.TEXT_TO_IMAGE).first()
    words = "a lighthouse at dawn over a quiet sea with gulls and soft golden light in oil paint".split()  # noqa: SIM905
    rows = Generation.objects.bulk_create(
        [
            Generation(
                owner=person, model=entry, kind=Kind.TEXT_TO_IMAGE, status=Status.SUCCEEDED, cost=1,
                prompt=" ".join(rng.choice(words) for _ in range(rng.randint(5, 14))),
                params={"aspect_ratio": "1:1", "num_outputs": 1, "seed": rng.randint(0, 2**31)},
                finished_at=timezone.now(),
            )
            for _ in range(n)
        ],
        batch_size=2000,
    )  # fmt: skip
    block = os.urandom(size + 4096)
    assets, thumbs = [], []
    for row in rows:
        prefix = f"users/{person.public_id}/generations/{row.uuid}"
        assets.append(Asset(generation=row, role=AssetRole.OUTPUT, index=0, storage_key=f"{prefix}/output-0.png",
                            mime_type="image/png", bytes=size, sha256="0" * 64, width=1024, height=1024))  # fmt: skip
        thumbs.append(Asset(generation=row, role=AssetRole.THUMBNAIL, index=0, storage_key=f"{prefix}/thumb-0.webp",
                            mime_type="image/webp", bytes=100, sha256="0" * 64, width=512, height=512))  # fmt: skip
    Asset.objects.bulk_create(assets + thumbs, batch_size=2000)
    keys = [a.storage_key for a in assets]

    def put(i_key):
        i, key = i_key
        offset = i % 4096  # each file differs a little from the others
        client.put_object(Bucket=MEDIA_BUCKET, Key=key, Body=block[offset : offset + size])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, enumerate(keys)))
    return person, keys


def copy_all(client, keys: list[str]) -> float:
    """The baseline: each object copied into another bucket by the server (copy_object), one after
    another, as a simple backup script would."""
    started = time.perf_counter()
    for key in keys:
        client.copy_object(Bucket=COPY_BUCKET, Key=key, CopySource={"Bucket": MEDIA_BUCKET, "Key": key})
    return time.perf_counter() - started


def check_zip(client, export, files: int) -> None:
    """The archive is whole: its central directory lists every file (read with ranged GETs)."""
    from io import BytesIO

    class Ranged:
        def __init__(self):
            self.pos = 0
            self.size = export.size_bytes

        def seek(self, offset, whence=0):
            self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
            return self.pos

        def tell(self):
            return self.pos

        def seekable(self):
            return True

        def read(self, n=-1):
            if n is None or n < 0:
                n = self.size - self.pos
            if n == 0:
                return b""
            end = min(self.size, self.pos + n) - 1
            body = client.get_object(Bucket=MEDIA_BUCKET, Key=export.storage_key, Range=f"bytes={self.pos}-{end}")
            data = body["Body"].read()
            self.pos += len(data)
            return data

    archive = zipfile.ZipFile(Ranged())
    names = archive.namelist()
    media = [n for n in names if n.startswith("media/")]
    assert len(media) == files, (len(media), files)
    data = json.load(BytesIO(archive.read("data.json")))
    assert len(data["generations"]) == files


def report(args, f: dict) -> None:
    copy = statistics.mean(f["copies"])
    big, small = f["big"], f["small"]
    mib = 1024 * 1024
    print(f"export bench: {f['files']:,} files, {f['media_bytes'] / mib:,.0f} MiB of media "
          f"(zip {f['zip_bytes'] / mib:,.0f} MiB, {big['files']:,} entries)")  # fmt: skip
    print(f"  copy_object baseline  {copy:7.1f} s  (runs: {', '.join(f'{c:.1f}' for c in f['copies'])})")
    print(f"  export                {big['seconds']:7.1f} s  ratio {big['seconds'] / copy:4.2f}  (goal <= 1.5)")
    print(f"  export child peak RSS {big['peak_rss_kib'] / 1024:7.0f} MiB  (goal <= 150; "
          f"{big['rss_before_kib'] / 1024:.0f} MiB before: Django and the S3 client)")  # fmt: skip
    print(f"  {f['small_files']:,}-item account: ready {f['small_ready_seconds']:.1f} s after the request "
          f"(build {small['seconds']:.1f} s, peak RSS {small['peak_rss_kib'] / 1024:.0f} MiB; "
          "goal <= 60 s)")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
