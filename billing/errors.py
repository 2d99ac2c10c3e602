from __future__ import annotations

from config.errors import ApplicationError


class BillingError(ApplicationError):
    """Base class for billing errors; `str(exc)` is shown to the person."""


class InsufficientCredits(BillingError):
    status = 402
    type = "insufficient_credits"

    def __init__(self, *, needed: int, balance: int):
        super().__init__(
            f"This needs {needed} credit{'s' if needed != 1 else ''} and you have {balance}. "
            "Buy more credits or pick a cheaper model."
        )
        self.needed = needed
        self.balance = balance


class AccountBlocked(InsufficientCredits):
    """Credits are owed after a refund or dispute; nothing new can be generated until settled."""

    status = 403
    type = "account_in_debt"

    def __init__(self, *, debt: int):
        BillingError.__init__(
            self,
            f"Your account owes {debt} credit{'s' if debt != 1 else ''} after a refunded payment, so new "
            "generations are paused. Buying credits settles it.",
        )
        self.needed = 0
        self.balance = 0
        self.debt = debt


class PaymentsUnavailable(BillingError):
    status = 503
    type = "payments_unavailable"

    def __init__(self) -> None:
        super().__init__("Payments are not set up on this server yet, so nothing can be bought here.")


class PaymentsError(BillingError):
    """Stripe refused or could not be reached. `str(exc)` is for people; `detail` for staff."""

    status = 502
    type = "payments_error"

    def __init__(self, message: str, *, retryable: bool, detail: str = "", code: str = ""):
        super().__init__(message)
        self.retryable = retryable
        self.detail = detail
        self.code = code
