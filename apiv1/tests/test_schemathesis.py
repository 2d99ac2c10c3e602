"""schemathesis (4.x) over /api/v1/openapi.json against a live server, with an API key: generated
requests for every operation; no answer is a server error, and every answer conforms to the
document (status code, content type, headers, body schema)."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apiv1.tests.conftest import fund

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Invalid requests (wrong types, missing fields, bad ids): refused with a documented problem, never a 5xx.
NEGATIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
EXAMPLES_PER_OPERATION = 20
TIME_BUDGET = 120.0


@pytest.mark.django_db(transaction=True)
def test_generated_requests_get_documented_answers_and_no_server_errors(live_server, key, funded, settings):
    # The limits are tested elsewhere; here they would only turn later examples into 429s.
    settings.API_RATE_PER_KEY = settings.API_RATE_PER_USER = "100000/m"
    settings.GENERATION_SUBMIT_RATE_PER_USER = settings.GENERATION_SUBMIT_RATE_PER_IP = "100000/m"
    fund(funded, 5000, key="schemathesis")
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    started = time.monotonic()
    tested = []

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, checks in ((GenerationMode.POSITIVE, CHECKS), (GenerationMode.NEGATIVE, NEGATIVE_CHECKS)):
            _run(operation, mode, checks, base_url=live_server.url, headers=headers)
            tested.append(f"{operation.label} ({mode.value})")
            assert time.monotonic() - started < TIME_BUDGET, f"over budget after {tested}"

    assert len(tested) == 14, tested


def _run(operation, mode, checks, *, base_url: str, headers: dict) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=45)

    run()
