"""Errors API v1 raises on purpose (all ApplicationError: one handler turns them into problem+json)."""

from __future__ import annotations

from config.errors import ApplicationError


class ApiError(ApplicationError):
    """Base class for API v1's own refusals."""


class IdempotencyKeyReused(ApiError):
    """The same Idempotency-Key came with a different request: answering the first job would hide
    that the second was never started, starting it would break the key's promise."""

    status = 422
    type = "idempotency_key_reused"
    title = "Idempotency-Key reused with another request"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used with a different request. Send a new key for a new generation.",
            field="Idempotency-Key",
        )


class IdempotencyTargetGone(ApiError):
    """The generation the key made was deleted since: nothing to replay, and a new job under the
    same key would charge a retry that promised not to be charged."""

    status = 409
    type = "idempotency_key_spent"
    title = "The generation made with this Idempotency-Key was deleted"

    def __init__(self) -> None:
        super().__init__(
            "The generation made with this Idempotency-Key was deleted. Send a new key to start another.",
            field="Idempotency-Key",
        )


class ApiRateLimited(ApiError):
    """Too many API calls from one person or one credential in the window (API_RATE_PER_*)."""

    status = 429
    type = "rate_limited"
    title = "Too many requests"

    def __init__(self, *, retry_after: int):
        seconds = max(1, int(retry_after))
        super().__init__(
            f"Too many API calls. Please wait {seconds} second{'s' if seconds != 1 else ''} and try again."
        )
        self.retry_after = seconds


class GenerationNotFound(ApiError):
    status = 404
    type = "not_found"
    title = "Not found"

    def __init__(self, message: str = "No such generation.") -> None:
        super().__init__(message)
