from __future__ import annotations

import pytest

from developers.tests import receiver as receiver_module


@pytest.fixture
def receiver(settings):
    """A local receiver the SSRF guard lets through (DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS),
    as a test suite's own server is."""
    hook, server = receiver_module.start()
    settings.DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS = [hook.host]
    settings.DEVELOPER_WEBHOOK_TIMEOUT = 5.0
    yield hook
    server.shutdown()
    server.server_close()
