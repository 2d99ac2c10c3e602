"""A job that outlasts the call: progress notifications stream while the tool waits, the tool
answers with the running job and how to poll, and get_generation brings the result later.

The job runs at Replicate (the suite's stand-in), files go to S3 (moto): the worker hands the
job off at once (as with webhooks) and the beat poller's `generation_sync` finishes it."""

from __future__ import annotations

import io
import threading
import time

import pytest
import requests
from django.db import connections
from PIL import Image

from generation.models import Generation, Source, Status
from generation.services import generation_sync
from mcpserver import tools
from mcpserver.tests.conftest import make_key, mcp_session, run

pytestmark = pytest.mark.django_db(transaction=True)

FLUX = "black-forest-labs/flux-schnell"


@pytest.fixture
def replicate_site(mcp_site, settings, replicate_api, s3_storage):
    settings.REPLICATE_API_TOKEN = replicate_api.state.token
    settings.REPLICATE_BASE_URL = replicate_api.url
    settings.REPLICATE_WEBHOOK_SECRET = replicate_api.state.webhook_secret
    settings.REPLICATE_TIMEOUT = 2.0
    settings.GENERATION_POLL_INTERVAL = 0.01
    settings.GENERATION_INLINE_WAIT = 0.05  # the worker hands the job off at once
    settings.WEBHOOK_BASE_URL = ""
    return mcp_site


def test_a_long_job_streams_progress_then_get_generation_returns_it(replicate_site, funded_alice, replicate_api):
    replicate_api.script(FLUX, reads_before_final=1000)  # still processing whenever asked
    tools_wait, tools_slice = tools.WAIT_SECONDS, tools.WAIT_SLICE
    tools.WAIT_SECONDS, tools.WAIT_SLICE = 3, 0.5  # the 40 s hold, shortened for the test
    token = make_key(funded_alice)
    progress: list[tuple[float, float | None, str | None]] = []
    seen_at: list[float] = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))
        seen_at.append(time.monotonic())

    def finish_later(generation_uuid: str) -> None:
        """What the beat poller does, a second into get_generation's wait."""
        try:
            time.sleep(1.0)
            replicate_api.script(FLUX, reads_before_final=0)
            generation_sync(generation_id=Generation.objects.get(uuid=generation_uuid).pk)
        finally:
            connections.close_all()

    async def scenario():
        async with mcp_session(f"{replicate_site.url}/mcp", token) as session:
            started = time.monotonic()
            first = await session.call_tool(
                "generate_image", {"prompt": "a slow sunrise", "model": "flux-schnell"}, progress_callback=on_progress
            )
            answered_at = time.monotonic()
            job = first.structured_content["id"]
            poller = threading.Thread(target=finish_later, args=(job,))
            poller.start()
            later = await session.call_tool("get_generation", {"generation_id": job, "wait_seconds": 20})
            poller.join()
            return first, later, started, answered_at

    try:
        first, later, started, answered_at = run(scenario())
    finally:
        tools.WAIT_SECONDS, tools.WAIT_SLICE = tools_wait, tools_slice

    # While it ran: notifications came one by one during the call (streamed, not all at the end).
    assert first.is_error is False
    assert first.structured_content["status"] == "running"
    assert len(progress) >= 4
    assert 2 < progress[-1][1] <= 3 and progress[-1][0] <= progress[-1][1]  # of the 3 s the call may wait
    assert [done for done, _, _ in progress] == sorted(done for done, _, _ in progress)
    assert "Running" in progress[0][2]
    assert seen_at[0] - started < answered_at - started - 1.5  # the first one arrived long before the answer
    text = first.content[0].text
    assert "get_generation" in text and first.structured_content["id"] in text
    assert not [block for block in first.content if block.type == "image"]

    # Later: the result, its picture (from S3) and a presigned link that works.
    assert later.is_error is False, later.content
    job = later.structured_content
    assert job["status"] == "succeeded"
    images = [block for block in later.content if block.type == "image"]
    assert len(images) == 1
    download = requests.get(job["outputs"][0]["url"], timeout=10)
    assert download.status_code == 200
    assert Image.open(io.BytesIO(download.content)).format == "PNG"
    generation = Generation.objects.get(uuid=job["id"])
    assert generation.source == Source.MCP and generation.status == Status.SUCCEEDED
