"""Errors the developers services raise on purpose; forms show them beside their field."""

from __future__ import annotations

from config.errors import ApplicationError


class WebhookError(ApplicationError):
    """Base class. `str(exc)` is a sentence for the developer."""


class WebhookEndpointLimit(WebhookError):
    status = 409
    type = "webhook_endpoint_limit"

    def __init__(self, limit: int):
        super().__init__(f"You can register at most {limit} endpoints. Delete one you no longer use first.")


class WebhookDeliveryNotResendable(WebhookError):
    status = 409
    type = "conflict"


class WebhookSendRateLimited(WebhookError):
    status = 429
    type = "rate_limited"

    def __init__(self, *, retry_after: float | int):
        self.retry_after = max(1, int(retry_after))
        minutes = max(1, -(-self.retry_after // 60))
        super().__init__(
            "You have sent many test events and resends in a short time. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )
