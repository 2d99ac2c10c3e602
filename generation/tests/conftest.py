"""Fixtures for the generation tests that use the Replicate provider."""

from __future__ import annotations

import pytest


@pytest.fixture
def replicate_env(settings, replicate_api, s3_storage):
    """Replicate through the suite's Replicate-API server, files in the S3 API server (moto)."""
    settings.REPLICATE_API_TOKEN = replicate_api.state.token
    settings.REPLICATE_BASE_URL = replicate_api.url
    settings.REPLICATE_WEBHOOK_SECRET = replicate_api.state.webhook_secret
    settings.REPLICATE_TIMEOUT = 2.0
    settings.GENERATION_POLL_INTERVAL = 0.01
    settings.GENERATION_INLINE_WAIT = 10
    settings.WEBHOOK_BASE_URL = ""
    return {"api": replicate_api, "s3": s3_storage}
