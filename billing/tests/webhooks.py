"""Deliver a Stripe event to our webhook, signed exactly as Stripe signs it (shared by the billing tests)."""

from __future__ import annotations

import json

from tests.fakes.stripe_api import sign_payload
from tests.fixtures import STRIPE_WEBHOOK_SECRET


def send(client, event: dict, capture, *, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None):
    """POST the event to /webhooks/stripe/ and run what it queued on commit (the task, inline)."""
    body = json.dumps(event)
    with capture(execute=True):
        return client.post(
            "/webhooks/stripe/",
            data=body,
            content_type="application/json",
            headers={"Stripe-Signature": sign_payload(body, secret, timestamp)},
        )
