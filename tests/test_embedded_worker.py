"""`make run`'s launcher (config/devserver.py) from a fresh directory: the web server queues a job
on the filesystem broker, the worker it started runs it, and stopping leaves no process behind.

The launcher gets only what a fresh machine has (PATH, HOME, LANG) plus temporary
ATELIER_VAR_DIR, MEDIA_ROOT and a SQLite DATABASE_URL, and binds 127.0.0.1 on a free port.
Every wait has a deadline; the whole test takes about half a minute (mostly migrations).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.harness import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find processes")


def processes_mentioning(*needles: str) -> dict[int, str]:
    """pid -> command line of every live process whose command line contains one of the needles."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(needle in cmdline for needle in needles):
            found[int(entry.name)] = cmdline
    return found


def wait_until(predicate, *, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout}s\n{log.read_text(errors='replace')[-4000:]}")


class Launcher:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.port = free_port()
        self.var = tmp_path / "var"
        self.db = tmp_path / "atelier.sqlite3"
        self.log = tmp_path / "launcher.log"  # per run: two suites may run side by side
        self.env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
        self.env.update(
            {
                "ATELIER_VAR_DIR": str(self.var),
                "MEDIA_ROOT": str(tmp_path / "media"),
                "DATABASE_URL": f"sqlite:///{self.db}",
                "CELERY_CONCURRENCY": "2",
            }
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ours(self) -> dict[int, str]:
        """Every process this launcher started: all of them name the temp dir or the port."""
        return processes_mentioning(str(self.var), f"runserver 127.0.0.1:{self.port}")

    def start(self) -> Launcher:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "config.devserver", f"127.0.0.1:{self.port}"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_port(self.port, timeout=180, proc=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"launcher did not come up: {exc}\n{self.text()[-4000:]}") from exc
        return self

    def stop(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill_everything(self) -> None:
        """Clean-up after a failure: nothing of this test may outlive it."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in self.ours():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def detail(self, generation_uuid: str) -> tuple[str, str, str]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(
                "SELECT status, error_message, error_detail FROM generation_generation WHERE uuid = ?",
                (uuid.UUID(generation_uuid).hex,),
            ).fetchone()

    def status(self, generation_uuid: str) -> tuple[str, str | None] | None:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute(
                "SELECT status, started_at FROM generation_generation WHERE uuid = ?", (uuid.UUID(generation_uuid).hex,)
            ).fetchone()
        return row


def csrf_post(session: requests.Session, url: str, data: dict, *, form_page: str = "") -> requests.Response:
    """GET the page with the form (for the CSRF cookie), then POST it as a browser would."""
    session.get(form_page or url, timeout=30).raise_for_status()
    data = {**data, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    return session.post(url, data=data, allow_redirects=False, timeout=30)


def submit(session: requests.Session, launcher: Launcher, prompt: str) -> str:
    """The create form, as a browser sends it; returns the new generation's uuid."""
    response = csrf_post(session, launcher.url + "/create/?tab=image", {"model": "local-canvas", "prompt": prompt})
    assert response.status_code == 302, response.text[-2000:]
    return re.search(r"/g/([0-9a-f-]{36})/", response.headers["Location"]).group(1)


def worker_idle(launcher: Launcher) -> bool:
    """No message waits on disk and the worker finished every run it received (the demo
    account's sample jobs, queued before the worker started, are among them)."""
    if any(name.endswith(".celery.msg") for name in os.listdir(launcher.var / "broker" / "queue")):
        return False
    log = launcher.text()
    received = set(re.findall(r"Task generation\.tasks\.run_generation\[([0-9a-f-]+)\] received", log))
    done = set(re.findall(r"Task generation\.tasks\.run_generation\[([0-9a-f-]+)\] (?:succeeded|failed)", log))
    return bool(received) and received <= done


def read_output(tmp_path: Path, generation_uuid: str) -> bytes:
    outputs = list((tmp_path / "media").rglob(f"*/{generation_uuid}/output-*.png"))
    assert len(outputs) == 1, outputs
    return outputs[0].read_bytes()


def test_make_run_queues_jobs_for_its_own_worker_and_stops_without_leftovers(tmp_path):
    launcher = Launcher(tmp_path)
    try:
        launcher.start()
        assert requests.get(launcher.url + "/", timeout=30).status_code == 200
        worker = wait_until(
            lambda: [pid for pid, cmd in launcher.ours().items() if "celery" in cmd and "--beat" in cmd],
            timeout=60,
            what="worker process",
            log=launcher.log,
        )
        wait_until(lambda: " ready." in launcher.text(), timeout=60, what="worker ready", log=launcher.log)
        assert (launcher.var / "broker" / "queue").is_dir()

        browser = requests.Session()
        signed_in = csrf_post(
            browser,
            launcher.url + "/accounts/login/",
            {"login": settings.DEMO_USER_EMAIL, "password": settings.DEMO_USER_PASSWORD},
        )
        assert signed_in.status_code == 302, signed_in.text[-2000:]

        # Freeze the worker (and everything in its group): a job that ran inline in the web
        # request would be finished anyway; a queued one must wait for the worker.
        worker_group = os.getpgid(worker[0])
        os.killpg(worker_group, signal.SIGSTOP)
        try:
            kept, canceled = (submit(browser, launcher, prompt) for prompt in ("a lighthouse", "never mind"))
            assert launcher.status(kept) == launcher.status(canceled) == ("queued", None)
            assert any(name.endswith(".celery.msg") for name in os.listdir(launcher.var / "broker" / "queue"))
            page = f"{launcher.url}/g/{canceled}/"
            assert csrf_post(browser, page + "cancel/", {}, form_page=page).status_code == 302
            time.sleep(1.0)
            assert launcher.status(kept) == ("queued", None)
            assert launcher.status(canceled)[0] == "canceled"
        finally:
            os.killpg(worker_group, signal.SIGCONT)

        seen = []

        def finished():
            status, _ = launcher.status(kept)
            if not seen or seen[-1] != status:
                seen.append(status)
            return status in {"succeeded", "failed", "canceled"}

        wait_until(finished, timeout=60, what="the job to finish", log=launcher.log)
        assert seen[-1] == "succeeded", launcher.text()[-4000:]
        assert set(seen) <= {"queued", "running", "succeeded"}
        assert launcher.status(kept)[1] is not None  # started by the worker
        wait_until(lambda: worker_idle(launcher), timeout=60, what="the worker to run out of work", log=launcher.log)
        assert read_output(tmp_path, kept).startswith(b"\x89PNG")
        assert launcher.status(canceled) == ("canceled", None)  # its task found it canceled
        assert not list((tmp_path / "media").rglob(f"*/{canceled}/output-*"))
        assert browser.get(f"{launcher.url}/g/{kept}/", timeout=30).status_code == 200

        # A burst from several browsers while the worker writes: SQLite waits its turn, no
        # "database is locked".
        def one(n: int) -> str:
            session = requests.Session()
            session.cookies.update(browser.cookies)
            return submit(session, launcher, f"burst {n}")

        with ThreadPoolExecutor(max_workers=4) as pool:
            burst = list(pool.map(one, range(8)))
        final = {"succeeded", "failed", "canceled"}
        wait_until(
            lambda: all(launcher.status(g)[0] in final for g in burst), timeout=90, what="the burst", log=launcher.log
        )
        assert [launcher.detail(g) for g in burst] == [("succeeded", "", "")] * len(burst)
        assert "database is locked" not in launcher.text()

        running = launcher.ours()
        assert any("runserver" in cmd for cmd in running.values()) and worker[0] in running
        assert launcher.stop() == 0
        assert launcher.ours() == {}, launcher.ours()
        with pytest.raises(ProcessLookupError):
            os.killpg(worker_group, 0)
        assert "Warm shutdown" in launcher.text()
    finally:
        launcher.kill_everything()


# --- which broker the settings choose ----------------------------------------------------------

BROKER = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER, s.EMBEDDED_BROKER, s.BROKER_CONFIGURED, "
    "s.CELERY_BROKER_TRANSPORT_OPTIONS.get('data_folder_in'), s.DATABASES['default'].get('OPTIONS'))"
)


def test_no_broker_in_development_means_the_filesystem_broker_under_the_var_dir(tmp_path):
    from tests.test_settings import run

    result = run(BROKER, {"ATELIER_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    url, eager, embedded, configured, folder, *_ = result.stdout.split(maxsplit=5)
    assert (url, eager, embedded, configured) == ("filesystem://localhost/", "False", "True", "False")
    assert folder == str(tmp_path / "broker" / "queue") and Path(folder).is_dir()
    # Web and worker write the SQLite file side by side: WAL, a busy timeout, BEGIN IMMEDIATE.
    assert "'timeout': 20" in result.stdout and "'transaction_mode': 'IMMEDIATE'" in result.stdout
    assert "journal_mode=WAL" in result.stdout


def test_eager_stays_an_explicit_opt_out_and_a_broker_server_wins(tmp_path):
    from tests.test_settings import production_env, run

    eager = run(BROKER, {"ATELIER_VAR_DIR": str(tmp_path), "CELERY_TASK_ALWAYS_EAGER": "true"})
    assert eager.stdout.split()[:4] == ["memory://", "True", "False", "False"], eager.stderr
    redis = run(BROKER, {"ATELIER_VAR_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert redis.stdout.split()[:5] == ["redis://127.0.0.1:6379/3", "False", "False", "True", "None"], redis.stderr
    # Production without a broker keeps running tasks inline: nothing there starts a worker.
    production = run(BROKER, production_env(ATELIER_VAR_DIR=str(tmp_path)))
    assert production.stdout.split()[:4] == ["memory://", "True", "False", "False"], production.stderr
