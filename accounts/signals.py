"""Signals accounts sends so the apps built on it (billing, privacy) can react without accounts
importing them: identity stays the ground floor."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by `user_accept_terms` inside its transaction, with `user`, `version` (the policy version
# accepted) and `request` (or None). privacy records the PolicyAcceptance and the activity event.
terms_accepted = Signal()
