"""Signals generation sends so apps built on it (privacy's activity log) can react without
generation importing them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent when a person asks to delete generations, inside the request's transaction, with `user`,
# `count` and `whole_history` (True for "Delete my whole history").
deletion_requested = Signal()

# Sent after the transaction that made a job final commits, with `generation_id` and `status`
# (succeeded or failed; a person's own cancel is not sent): developer webhooks (developers app)
# deliver `generation.succeeded` / `generation.failed` from it.
generation_finished = Signal()
