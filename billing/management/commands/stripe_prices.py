"""Create the Stripe Products and Prices for every active credit pack and plan (test mode first!).

Prices are found by their lookup key (`atelier-pack-<slug>`, `atelier-plan-<slug>`) and reused
when amount and currency still match, so running it twice creates nothing new. The ids are
stored on the pack/plan rows and printed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.errors import BillingError
from billing.services.payments import stripe_prices_sync


class Command(BaseCommand):
    help = "Create or find the Stripe Prices of all active credit packs and plans, and store their ids."

    def handle(self, *args, **options) -> None:
        try:
            rows = stripe_prices_sync()
        except BillingError as exc:
            raise CommandError(f"{exc} {getattr(exc, 'detail', '')}".strip()) from exc
        for title, price_id in rows:
            self.stdout.write(f"{title:<20} {price_id}")
        self.stdout.write(self.style.SUCCESS(f"{len(rows)} prices ready."))
