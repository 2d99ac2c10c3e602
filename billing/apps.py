from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Wallet, credit ledger and Stripe (generation and billing issues)."""

    name = "billing"
