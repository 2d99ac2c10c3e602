from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Wallet, append-only credit ledger and (billing issue) Stripe."""

    name = "billing"

    def ready(self) -> None:
        from billing import receivers  # noqa: F401 - connects the signal receivers
