from __future__ import annotations

from billing.models import LedgerEntry, Wallet


def balance_of(*, user) -> int:
    return Wallet.objects.filter(user=user).values_list("balance", flat=True).first() or 0


def ledger_for(*, user):
    return LedgerEntry.objects.filter(wallet__user=user).order_by("-created_at", "-id")
