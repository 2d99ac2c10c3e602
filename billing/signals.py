"""Signals billing sends so privacy can record the changes in the person's activity log without
billing importing privacy."""

from __future__ import annotations

from django.dispatch import Signal

# A staff member added or took credits by hand: `adjustment` (billing.CreditAdjustment), `staff`.
credits_adjusted_by_staff = Signal()
# The account's wallet was flagged for staff review, or the flag cleared: `user`, `flagged` (bool),
# `reason` (words), `staff` (the staff member, or None when a Stripe event caused it).
account_flag_changed = Signal()
