"""Settle every refunded or disputed payment again against what Stripe reports now.

Run once after deploying the dispute-lifecycle fix (billing migration 0006): before it, an inquiry
took a payment's credits for good and a won dispute could be undone by a late grant, and those
disputes are closed, so no event will come to put them right. Safe to run any time: settling is
idempotent, and a payment already right is left as it is. Prints one line per payment it changed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.errors import BillingError
from billing.services.payments import payments_settle_all


class Command(BaseCommand):
    help = "Re-settle refunded/disputed payments (credits, debt, flags) from Stripe's current state."

    def handle(self, *args, **options) -> None:
        try:
            changed = payments_settle_all(report=lambda line: self.stdout.write(line))
        except BillingError as exc:
            raise CommandError(f"{exc} {getattr(exc, 'detail', '')}".strip()) from exc
        self.stdout.write(self.style.SUCCESS(f"{changed} payment(s) changed."))
