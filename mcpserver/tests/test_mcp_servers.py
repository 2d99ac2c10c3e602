"""/mcp where it really runs: `make run` (config/devserver.py: runserver plus a Celery worker on the
filesystem broker) and gunicorn as the image starts it (`config.wsgi:application --preload`,
gthread workers), each driven by the official MCP client with an API key. Jobs are queued and run by the
real worker, so the generation tool waits for a job that is not done when it is submitted.

Like tests/test_embedded_worker.py, the servers get a fresh temp directory and a SQLite database
of their own (migrated by the launcher); about half a minute, mostly migrations."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mcpserver.tests.conftest import mcp_session, run
from tests.harness import ServiceProcess, find_executable, free_port, missing
from tests.test_embedded_worker import ROOT, Launcher, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find processes")

CREATE_KEY = """
from django.conf import settings
from accounts.models import User
from accounts.services import api_key_create
user = User.objects.get(email=settings.DEMO_USER_EMAIL)
print(api_key_create(user=user, name="MCP server test", scopes=["read", "generate"])[1])
"""


def _api_key(launcher: Launcher) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CREATE_KEY],
        cwd=ROOT,
        env=launcher.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


async def _generate(url: str, token: str):
    progress: list[float] = []

    async def on_progress(done, total, message):
        progress.append(done)

    async with mcp_session(url, token) as session:
        tools = [tool.name for tool in (await session.list_tools()).tools]
        result = await session.call_tool(
            "generate_image",
            {"prompt": "a kite over the dunes", "model": "local-canvas"},
            progress_callback=on_progress,
        )
        return tools, result, progress


def _assert_picture(tools, result, progress) -> None:
    assert len(tools) == 7
    assert progress, "the job ran inline: no progress while waiting for the worker"
    assert result.is_error is False, result.content
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["source"] == "mcp"
    assert [block.type for block in result.content] == ["text", "image"]


def test_mcp_under_make_run_and_under_gunicorn(tmp_path):
    gunicorn = find_executable("gunicorn")
    if gunicorn is None:
        missing("gunicorn", "not installed")
    launcher = Launcher(tmp_path)
    web = None
    try:
        launcher.start()
        wait_until(lambda: " ready." in launcher.text(), timeout=60, what="worker ready", log=launcher.log)
        token = _api_key(launcher)

        # make run: runserver (threaded WSGI, autoreloader), the job run by the embedded worker.
        _assert_picture(*run(_generate(f"{launcher.url}/mcp", token)))

        # The image's server: gunicorn with preloaded gthread workers, on the same database and
        # broker (the launcher's worker runs the job).
        port = free_port()
        argv = [
            gunicorn, "config.wsgi:application", "--preload", "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--worker-class", "gthread", "--threads", "8", "--timeout", "60", "--no-control-socket",
        ]  # fmt: skip
        web = ServiceProcess(
            "gunicorn-mcp", argv, port, log_dir=tmp_path, env={**launcher.env, "PYTHONPATH": str(ROOT)}
        )
        web.start(timeout=60)
        tools, result, progress = run(_generate(f"http://127.0.0.1:{port}/mcp", token))
        _assert_picture(tools, result, progress)
        assert result.structured_content["outputs"][0]["url"].startswith(f"http://127.0.0.1:{port}/")
    finally:
        if web is not None:
            web.stop()
        launcher.stop()
        launcher.kill_everything()
