from __future__ import annotations


class BillingError(Exception):
    """Base class for billing errors; `str(exc)` is shown to the person."""


class InsufficientCredits(BillingError):
    def __init__(self, *, needed: int, balance: int):
        super().__init__(
            f"This needs {needed} credit{'s' if needed != 1 else ''} and you have {balance}. "
            "Buy more credits or pick a cheaper model."
        )
        self.needed = needed
        self.balance = balance
