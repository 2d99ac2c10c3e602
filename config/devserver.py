"""`make run`: the embedded default in one command, web server and a real Celery worker.

    python -m config.devserver [HOST:PORT]

It migrates, makes sure the demo account exists, then starts two children:

- with no broker configured (the embedded default), a Celery worker on kombu's filesystem
  broker under `<ATELIER_VAR_DIR>/broker`, with beat inside it (`worker --beat`), so jobs are
  queued and run in the background as in production, and beat's poller and stuck-job sweeper
  run. One process with beat inside is fine for one machine in development; a deployment runs
  exactly one `celery beat` of its own (README, "What runs where");
- `manage.py runserver HOST:PORT`, with its autoreloader.

With REDIS_URL / CELERY_BROKER_URL set, no worker is started here (`make worker` and `make
beat` run beside it, as before); with CELERY_TASK_ALWAYS_EAGER=true tasks run inline in the
web process and no worker is needed.

Stopping: Ctrl-C, SIGTERM or SIGHUP stops both children, the worker with a warm shutdown (it
finishes the task in hand and puts back what it had not started; a second Ctrl-C kills at once).
If either child exits on its own, the other is stopped too: a web server whose jobs nobody runs
would look broken in a subtler way. Each child runs in a process group of its own (a new
session), so nothing is left behind: the autoreloader's server process, the worker's pool
processes and beat go with it. The worker does not reload on code changes; restart `make run`
after changing tasks or services.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_STOP_TIMEOUT = 30.0  # a warm shutdown waits for the task in hand (a local job takes a second)
SERVER_STOP_TIMEOUT = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the launcher itself is killed (-9), instead of living on."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: Ctrl-C and SIGTERM still stop the children


class Child:
    """A child process in a session of its own, stopped together with everything it started."""

    def __init__(self, name: str, argv: list[str], *, stop_timeout: float, signal_group: bool):
        self.name = name
        self.argv = argv
        self.stop_timeout = stop_timeout
        # runserver's autoreloader parent does not pass SIGTERM on to the server process, so the
        # whole group gets it; the Celery worker's main process stops its own pool and beat.
        self.signal_group = signal_group
        self.proc: subprocess.Popen | None = None

    def start(self) -> Child:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec
        )
        return self

    def exited(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, *, hurry: Callable[[], bool] = lambda: False) -> None:
        """SIGTERM, wait (until the timeout, or until `hurry()` says a second Ctrl-C came), then
        SIGKILL whatever is left of the group."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # a new session: the group id is the child's pid
        if self.proc.poll() is None and not hurry():
            try:
                if self.signal_group:
                    os.killpg(pgid, signal.SIGTERM)
                else:
                    self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + self.stop_timeout
            while self.proc.poll() is None and time.monotonic() < deadline and not hurry():
                time.sleep(0.05)
            if self.proc.poll() is None and not hurry():
                print(f"atelier: the {self.name} did not stop within {self.stop_timeout:.0f}s; killing it", flush=True)
        self._kill_group(pgid)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)

    @staticmethod
    def _kill_group(pgid: int) -> None:
        """Whatever is left of the group (stragglers, or everything after a timeout) is killed."""
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)


def _settings():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    return settings


def worker_argv(settings) -> list[str]:
    concurrency = os.environ.get("CELERY_CONCURRENCY", "2")
    return [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--beat",
        f"--schedule={Path(settings.VAR_DIR) / 'celerybeat-schedule'}",
        "-l", "info", f"--concurrency={concurrency}", "-n", f"embedded-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.devserver", description=__doc__.split("\n\n")[0])
    parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="as for runserver (HOST:PORT)")
    parser.add_argument("--skip-setup", action="store_true", help="skip migrate and the demo account")
    options = parser.parse_args(argv)

    stopping: list[int] = []

    def on_signal(signum, _frame) -> None:
        stopping.append(signum)
        if len(stopping) == 1:
            print("atelier: stopping (the worker finishes the task in hand; Ctrl-C again to kill)", flush=True)
        elif len(stopping) == 2:
            print("atelier: stopping at once", flush=True)

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)

    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # children's logs appear as they happen
    settings = _settings()
    try:
        if not options.skip_setup:
            _manage("migrate", "--noinput")
            _manage("ensure_demo_user")
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    if stopping:
        return 0

    children: list[Child] = []
    if settings.EMBEDDED_BROKER:
        where = settings.EMBEDDED_BROKER_DIR
        print(f"atelier: jobs run in a Celery worker (beat inside) on the filesystem broker in {where}", flush=True)
        children.append(
            Child("worker", worker_argv(settings), stop_timeout=WORKER_STOP_TIMEOUT, signal_group=False).start()
        )
    elif settings.CELERY_TASK_ALWAYS_EAGER:
        print("atelier: CELERY_TASK_ALWAYS_EAGER is on: tasks run inline in the web process", flush=True)
    else:
        print("atelier: a broker is configured: run `make worker` and `make beat` beside this server", flush=True)
    print(f"atelier: starting on http://{options.addrport}/", flush=True)
    server_argv = [sys.executable, "manage.py", "runserver", options.addrport]
    children.append(Child("web server", server_argv, stop_timeout=SERVER_STOP_TIMEOUT, signal_group=True).start())

    code = 0
    try:
        while not stopping:
            ended = [(child, child.exited()) for child in children if child.exited() is not None]
            if ended:
                child, code = ended[0]
                print(f"atelier: the {child.name} exited (code {code}); stopping", flush=True)
                code = code or 1
                break
            time.sleep(0.2)
    finally:
        # The web server first (nothing new is queued), then the worker.
        for child in reversed(children):
            child.stop(hurry=lambda: len(stopping) >= 2)
    return code


if __name__ == "__main__":
    sys.exit(main())
