"""A real Celery worker process on Redis, sharing the test database and the S3 server.

Used by the end-to-end worker test and by bench/pipeline.py. The worker gets its
configuration only through the environment, exactly as in production.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent


def database_url(settings_dict: dict) -> str:
    if settings_dict["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("the worker process needs PostgreSQL (an in-memory SQLite test DB can't be shared)")
    user = settings_dict.get("USER") or "postgres"
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def broker_url(redis_url: str, db: int = 14) -> str:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") >= 3 else redis_url
    return f"{base}/{db}"


class WorkerProcess:
    def __init__(self, *, env: dict, log_path: Path, concurrency: int = 2, pool: str = "threads"):
        self.queue = f"atelier-test-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            **env,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.log_path = log_path
        self.concurrency = concurrency
        self.pool = pool
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        redis.Redis.from_url(self.env["CELERY_BROKER_URL"]).flushdb()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info", "-Q", self.queue,
            f"--pool={self.pool}", f"--concurrency={self.concurrency}", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-n", f"{self.queue}@%h",
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            if b"ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"worker not ready after {timeout}s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL, as `kill -9` or the OOM killer: no warm shutdown, no acks, no clean-up."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def point_app_at(app, *, broker: str, queue: str):
    """Make this process send tasks to the worker's broker and queue (instead of running them inline)."""
    saved = {
        "task_always_eager": app.conf.task_always_eager,
        "broker_url": app.conf.broker_url,
        "task_default_queue": app.conf.task_default_queue,
    }
    app.conf.task_always_eager = False
    app.conf.broker_url = broker
    app.conf.task_default_queue = queue
    _drop_connections(app)
    return saved


def _drop_connections(app) -> None:
    """Forget every broker connection and producer pool, so the next send uses the new broker."""
    from kombu import pools

    app.pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()


def restore_app(app, saved: dict) -> None:
    for key, value in saved.items():
        setattr(app.conf, key, value)
    _drop_connections(app)
