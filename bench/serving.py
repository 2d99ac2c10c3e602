"""What the benchmarks share: a throw-away database and a gunicorn serving the site on it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def throwaway_database(name: str) -> Iterator:
    """Django's test-database machinery on a database of the bench's own (`name`, never the suite's
    or the site's), created empty and migrated, dropped at the end whatever happens. Yields the
    connection. Call after django.setup()."""
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    original_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield connection
    finally:
        connection.close()
        connection.creation.destroy_test_db(original_name, verbosity=0)


@contextmanager
def gunicorn(settings_module: str, *, log: str, args: list[str], env: dict | None = None) -> Iterator[int]:
    """gunicorn serving config.wsgi with `settings_module` (DEBUG off) on the current database, on a
    free 127.0.0.1 port (yielded), its log in var/bench/`log`; stopped at the end."""
    from django.db import connection

    from tests.harness import free_port, wait_for_port
    from tests.worker import database_url

    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DEBUG": "false",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
         "--no-control-socket", "--log-level", "warning", *args],
        cwd=ROOT, env=environment, stdout=(logs / log).open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=web)
        yield port
    finally:
        web.terminate()
        web.wait(timeout=20)
