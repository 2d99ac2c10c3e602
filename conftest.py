"""Root conftest: personas and the real-service fixtures (see tests/fixtures.py)."""

from __future__ import annotations

import os

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests
# make beside it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.fixtures", "tests.browser"]
