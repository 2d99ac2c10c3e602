"""Gallery pages against a bare page, on PostgreSQL with a big history.

One person has 10,000 generations and ten others 100,000 more (each with its thumbnail row,
prompts drawn from a vocabulary, times spread over a year). A gunicorn (one sync worker, DEBUG
off) serves the site; the bench requests, interleaved round by round:

- bare      /bench/bare/ — base.html rendered with no queries (anonymous)
- bare-in   the same page signed in: the session, user and header-balance queries, which every
            signed-in page runs, the gallery included — the baseline the goal is judged on
- first     /gallery/ — the first page (24 cards)
- deep      /gallery/?cursor=… — the page after the 9,000th item
- filtered  /gallery/?kind=…&status=succeeded&fav=on — favourites of one kind
- search    /gallery/?q=lighthouse — prompt search (about 2 % of prompts have the word)

and prints each median, p90 and its ratios to both bare pages' medians (goal: ≤ 3 against the
signed-in one; bench/README.md says why), plus the SQL queries each page runs (goal: ≤ 8).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atelier REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/gallery.py [--rounds 300] [--others 10] [--per-user 10000] [--storage s3]

It creates its own database (`atelier_bench_gallery`) and drops it at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ATELIER_VAR_DIR", str(ROOT / "var" / "bench"))

DB_NAME = "atelier_bench_gallery"
# A bucket that is never contacted: presigning a URL is local work (botocore signs, no request).
S3_ENV = {
    "AWS_STORAGE_BUCKET_NAME": "atelier-bench",
    "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_S3_REGION_NAME": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_S3_PUBLIC_ENDPOINT_URL": "",
}
BATCH = 5_000
SEARCH_WORD = "lighthouse"
VOCAB = (  # noqa: SIM905 - a paragraph of words reads better than a list of 120 strings
    "a an the of in on at with under over beside portrait landscape city forest river mountain sea sky night dawn "
    "dusk winter summer autumn spring rain snow fog storm sun moon stars cat dog fox owl horse whale bird dragon "
    "robot castle garden street market cafe kitchen library train boat bridge tower desert island cave temple "
    "red blue green golden silver violet pink black white warm cold soft bright dark misty glowing ancient "
    "futuristic tiny giant quiet busy lonely happy calm wild painted sketched photographed rendered watercolor "
    "oil pastel ink charcoal pixel neon cinematic studio macro wide aerial close-up lighting shadows reflections "
    "texture detailed minimal surreal dreamy vintage modern baroque gothic cyberpunk solarpunk cozy rustic"
).split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-user", type=int, default=10_000, help="generations of the person measured")
    parser.add_argument("--others", type=int, default=10, help="other people, each with --per-user generations")
    parser.add_argument("--rounds", type=int, default=300, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--storage",
        choices=["local", "s3"],
        default="local",
        help="the server's storage: local files (signed links to our own view) or a private S3 bucket "
        "(presigned URLs, as in production; only signed, never fetched, so no S3 server is needed)",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/gallery.py needs DATABASE_URL (PostgreSQL)", file=sys.stderr)
        return 2

    import django

    django.setup()
    from bench.serving import gunicorn, throwaway_database

    with throwaway_database(DB_NAME):
        started = time.monotonic()
        urls, session = populate(args)
        print(f"gallery: populated in {time.monotonic() - started:.0f} s")
        queries = count_queries(urls, session)
        storage_env = S3_ENV if args.storage == "s3" else {}
        with gunicorn(
            "bench.gallery_settings", log="gallery-web.log", args=["--workers", "1"], env=storage_env
        ) as port:
            check_pictures(port, urls["first"], session, storage=args.storage)
            times = measure(port, urls, session, rounds=args.rounds, warmup=args.warmup)
    report(args, times, queries)
    print(f"  database used: {DB_NAME} (dropped)")
    return 0


def populate(args) -> tuple[dict[str, str], str]:
    """The people and their histories; returns the page URLs and the measured person's session cookie."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from generation import selectors
    from generation.models import Asset, AssetRole, CatalogEntry, Generation, Kind, Status
    from tests.factories import UserFactory

    rng = random.Random(7)
    entries = {kind: list(CatalogEntry.objects.filter(kind=kind)) for kind in Kind.values}
    statuses = [Status.SUCCEEDED] * 94 + [Status.FAILED] * 4 + [Status.CANCELED] * 2

    def prompt() -> str:
        words = [rng.choice(VOCAB) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.02:
            words.insert(rng.randrange(len(words)), SEARCH_WORD)
        return " ".join(words)

    person = UserFactory(email="measured@example.com")
    people = [person] + [UserFactory(email=f"other{i}@example.com") for i in range(args.others)]
    for owner in people:
        made = 0
        while made < args.per_user:
            rows = []
            for _ in range(min(BATCH, args.per_user - made)):
                kind = rng.choice(Kind.values)
                entry = rng.choice(entries[kind])
                rows.append(
                    Generation(
                        owner=owner, model=entry, kind=kind, prompt=prompt(), cost=entry.credit_cost,
                        status=rng.choice(statuses), favorite=rng.random() < 0.05,
                    )
                )  # fmt: skip
            rows = Generation.objects.bulk_create(rows)
            Asset.objects.bulk_create(
                [
                    Asset(
                        generation=row, role=AssetRole.THUMBNAIL, index=0, mime_type="image/webp", bytes=20_000,
                        sha256="0" * 64, width=512, height=512,
                        storage_key=f"users/{owner.public_id}/generations/{row.uuid}/thumb-0.webp",
                    )
                    for row in rows
                    if row.status == Status.SUCCEEDED
                ]
            )  # fmt: skip
            made += len(rows)
    with connection.cursor() as cursor:
        # Times spread over a year, independent of the ids (so ties and id order prove nothing).
        cursor.execute("UPDATE generation_generation SET queued_at = now() - random() * interval '365 days'")
        cursor.execute("VACUUM ANALYZE generation_generation")
        cursor.execute("VACUUM ANALYZE generation_asset")
    ordered = Generation.objects.filter(owner=person).order_by("-queued_at", "-id")
    deep = ordered[min(9_000, args.per_user - 30)]
    client = Client()
    client.force_login(person)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    urls = {
        "bare": "/bench/bare/",
        "bare-in": "/bench/bare/",
        "first": "/gallery/",
        "deep": f"/gallery/?cursor={selectors.gallery_cursor_encode(deep)}",
        "filtered": "/gallery/?kind=text_to_image&status=succeeded&fav=on",
        "search": f"/gallery/?q={SEARCH_WORD}",
    }
    return urls, session


def count_queries(urls: dict[str, str], session: str) -> dict[str, int]:
    """SQL queries per page, in this process (same code, same database)."""
    from django.test import Client, override_settings

    client = Client()
    counts = {}
    with override_settings(ROOT_URLCONF="bench.gallery_urls"):
        for name, url in urls.items():
            counts[name] = _count(client, name, url, session)
    return counts


def _count(client, name: str, url: str, session: str) -> int:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.cookies.clear()
    if name != "bare":
        client.cookies[settings.SESSION_COOKIE_NAME] = session
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}")
    page_query = [q["sql"] for q in captured.captured_queries if 'FROM "generation_generation"' in q["sql"]]
    if page_query:
        PLANS[name] = _plan(page_query[0])
    return len(captured.captured_queries)


PLANS: dict[str, str] = {}


def _plan(sql: str) -> str:
    """The scans PostgreSQL chose for a page's query, and its execution time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF) {sql}")
        lines = [row[0].strip() for row in cursor.fetchall()]
    scans = [line.split("  (")[0].lstrip("-> ") for line in lines if "Scan" in line]
    took = next((line for line in lines if line.startswith("Execution Time")), "")
    return f"{'; '.join(scans)} | {took}"


def check_pictures(port: int, url: str, session: str, *, storage: str) -> None:
    """The page measured really carries signed picture links of the storage asked for."""
    from django.conf import settings

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", url, headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"})
    body = conn.getresponse().read().decode()
    conn.close()
    marker = "X-Amz-Signature=" if storage == "s3" else 'src="/files/'
    if body.count(marker) < 12:  # most of the 24 cards are finished pictures
        raise RuntimeError(f"{url}: expected a picture link on most cards with {marker!r}, found {body.count(marker)}")


def _get(port: int, url: str, cookie: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    started = time.perf_counter()
    conn.request("GET", url, headers=headers)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if response.status != 200 or not body:
        raise RuntimeError(f"{url}: HTTP {response.status}")
    return elapsed


def measure(port: int, urls: dict[str, str], session: str, *, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Round by round, every page once, in a shuffled order: drift in the machine's load touches
    all pages alike."""
    from django.conf import settings

    cookies = {name: "" if name == "bare" else f"{settings.SESSION_COOKIE_NAME}={session}" for name in urls}
    for _ in range(warmup):
        for name, url in urls.items():
            _get(port, url, cookies[name])
    times: dict[str, list[float]] = {name: [] for name in urls}
    rng = random.Random(11)
    names = list(urls)
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            times[name].append(_get(port, urls[name], cookies[name]))
    return times


def report(args, times: dict[str, list[float]], queries: dict[str, int]) -> None:
    bare = statistics.median(times["bare"])
    bare_in = statistics.median(times["bare-in"])
    print(
        f"gallery: {args.per_user:,} generations measured, {args.others * args.per_user:,} of {args.others} others; "
        f"{args.rounds} rounds, gunicorn 1 sync worker, {args.storage} storage; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print("  ratios: to the signed-in bare page (the goal, ≤ 3) and to the anonymous one")
    for name, values in times.items():
        ordered = sorted(values)
        median = statistics.median(values)
        p90 = ordered[int(len(ordered) * 0.9)]
        print(
            f"  {name:9} median {median * 1000:6.2f} ms  p90 {p90 * 1000:6.2f} ms  "
            f"ratio signed-in {median / bare_in:5.2f}  anonymous {median / bare:5.2f}  queries {queries[name]}"
        )
    for name, plan in PLANS.items():
        print(f"  plan {name:9} {plan}")


if __name__ == "__main__":
    raise SystemExit(main())
