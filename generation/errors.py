"""Errors the generation services raise on purpose; views turn them into messages or 4xx JSON."""

from __future__ import annotations

from config.errors import ApplicationError


class GenerationError(ApplicationError):
    """Base class. `str(exc)` is a sentence we can show to the person."""


class InvalidInput(GenerationError):
    """The request (parameters, upload or URL) cannot be used; nothing was charged or stored.

    `field` names the form field the message belongs beside, when there is one.
    """

    status = 422
    type = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class AccountPaused(InvalidInput):
    """The person paused their account (privacy centre, "Pause my account"): no new jobs until
    they resume. A kind of InvalidInput, so every place that shows a refused submit shows it."""

    status = 403
    type = "account_paused"

    def __init__(self) -> None:
        super().__init__("Your account is paused, so no new generations can start. Resume it in the privacy centre.")


class NotAllowed(GenerationError):
    """The action does not fit the generation's state (e.g. cancelling a finished job)."""

    status = 409
    type = "conflict"


class ProviderError(GenerationError):
    """The provider failed. `retryable` says whether trying again later may help."""

    status = 502
    type = "provider_error"

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None, detail: str = ""):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail or message


class StorageUnavailable(ProviderError):
    """Our own storage (S3 or disk) failed; worth retrying, and nothing was charged for a submit."""

    status = 503
    type = "storage_unavailable"

    def __init__(self, detail: str):
        super().__init__(
            "We could not store files right now. Nothing was charged; please try again in a minute.",
            retryable=True,
            detail=detail,
        )


class SubmitRateLimited(GenerationError):
    """Too many submits from one person or one address in the window; nothing was done.

    `retry_after` is the number of seconds until the window ends (for a `Retry-After` header).
    """

    status = 429
    type = "rate_limited"

    def __init__(self, *, retry_after: int):
        seconds = max(1, int(retry_after))
        super().__init__(
            "You are starting generations faster than we allow. "
            f"Please wait {seconds} second{'s' if seconds != 1 else ''} and try again."
        )
        self.retry_after = seconds
