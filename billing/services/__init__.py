"""Billing services: the credit ledger (`ledger`) and Stripe payments (`payments`).

`from billing import services` keeps working for the ledger functions every app uses.
"""

from __future__ import annotations

from billing.services.ledger import (
    credits_adjust,
    credits_capture,
    credits_grant,
    credits_grant_signup_bonus,
    credits_release,
    credits_reserve,
    credits_revoke,
    payment_credits_settle,
    wallet_get,
)

__all__ = [
    "credits_adjust",
    "credits_capture",
    "credits_grant",
    "credits_grant_signup_bonus",
    "credits_release",
    "credits_reserve",
    "credits_revoke",
    "payment_credits_settle",
    "wallet_get",
]
