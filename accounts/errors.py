from __future__ import annotations

from config.errors import ApplicationError


class AccountsError(ApplicationError):
    """Base class for errors the accounts services raise on purpose."""


class UnderMinimumAge(AccountsError):
    """The person is younger than the minimum age; no account may be created."""


class AccountPausedForApi(AccountsError):
    """The key is valid but its owner paused their account (restriction of processing): the API
    answers 403 with this message instead of acting."""

    status = 403
    type = "account_paused"

    def __init__(self, message: str | None = None):
        super().__init__(
            message
            or "Your account is paused: Atelier does not act on it through the API until you resume it "
            "on the privacy centre."
        )


class ApiKeyInvalid(AccountsError):
    """A key form field that can't be accepted (no name, no scope)."""

    status = 422
    type = "invalid_input"


class ApiScopeMissing(AccountsError):
    """The key is valid but was not given the scope this call needs: 403."""

    status = 403
    type = "insufficient_scope"
