"""An explicit WEBHOOK_BASE_URL that is not https stops start-up with one line: Replicate would
post prediction bodies (prompts, output links) to it in the clear."""

from __future__ import annotations

import pytest

from tests.test_settings import PRINT, run


@pytest.mark.parametrize(
    "value", ["http://atelier.example", "ftp://atelier.example", "atelier.example", "http://localhost:1@evil.example"]
)
def test_a_webhook_base_url_that_is_not_https_stops_start_up(value):
    result = run(PRINT, {"WEBHOOK_BASE_URL": value})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [f"atelier: WEBHOOK_BASE_URL={value!r} must start with https:// (Replicate posts to it)"]


@pytest.mark.parametrize("value", ["https://atelier.example", "http://127.0.0.1:8123", "http://localhost:8000"])
def test_https_and_loopback_webhook_base_urls_are_accepted(value):
    result = run(
        "import django; django.setup(); from django.conf import settings as s; print(s.WEBHOOK_BASE_URL)",
        {"WEBHOOK_BASE_URL": value},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == value
