"""Errors that escape a program's door (the API under /api/ and the MCP endpoint) answered as
application/problem+json instead of Django's HTML pages: a body over DATA_UPLOAD_MAX_MEMORY_SIZE
(413) and anything unexpected (500, logged with its traceback). Programs parse these; a person's
browser still gets the HTML pages everywhere else."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

logger = logging.getLogger(__name__)

PROGRAM_PREFIXES = ("/api/", "/mcp")


class ProgramErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith(PROGRAM_PREFIXES):
            return None
        from accounts.api import problem_response

        if isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return problem_response(
                status=413,
                slug="request_too_large",
                title="Request too large",
                detail=f"The request body is larger than {limit // 1024} KB. Send pictures by link "
                "(image_url or openaiFileIdRefs), not inside the body.",
            )
        if settings.DEBUG:
            return None  # Django's technical page is more useful while developing
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return problem_response(
            status=500,
            slug="server_error",
            title="Something went wrong on our side",
            detail="Something went wrong on our side and we have been told. Try again in a minute; with the "
            "same Idempotency-Key a retry never starts (or charges) a second job.",
        )
