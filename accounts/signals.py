"""Signals accounts sends so the apps built on it (billing, privacy) can react without accounts
importing them: identity stays the ground floor."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by `user_accept_terms` inside its transaction, with `user`, `version` (the policy version
# accepted) and `request` (or None). privacy records the PolicyAcceptance and the activity event.
terms_accepted = Signal()

# Sent by `api_key_create` / `api_key_revoke` inside their transaction, with `user`, `key` (the
# ApiKey) and `request` (or None). privacy records the activity event.
api_key_created = Signal()
api_key_revoked = Signal()
