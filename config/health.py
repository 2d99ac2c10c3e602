"""`/healthz`: is every part this instance depends on working right now?

Each check returns None when fine or a short reason; the response names the failing part
so an operator (or a load balancer log) knows where to look.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

logger = logging.getLogger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise RuntimeError("value written to the cache could not be read back")
    if getattr(cache, "degraded", False):  # config.cache: Redis down, counting in process memory
        raise RuntimeError("Redis is unreachable; the cache runs on each process's memory")
    cache.delete(key)


def check_broker() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=3) as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


def check_storage() -> None:
    payload = uuid.uuid4().bytes
    name = default_storage.save(f"healthz/{uuid.uuid4().hex}.bin", ContentFile(payload))
    try:
        with default_storage.open(name, "rb") as handle:
            if handle.read() != payload:
                raise RuntimeError("object read back differs from what was written")
    finally:
        default_storage.delete(name)


def _checks() -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {"database": check_database, "storage": check_storage}
    if settings.REDIS_URL:
        checks["cache"] = check_cache
    if settings.BROKER_CONFIGURED:
        checks["broker"] = check_broker
    return checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict] = {}
    failing: list[str] = []
    for name, check in _checks().items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency is a failed check
            logger.warning("healthz: %s failed: %s", name, exc)
            failing.append(name)
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    body = {"status": "fail" if failing else "ok", "failing": failing, "checks": results}
    return JsonResponse(body, status=503 if failing else 200)
