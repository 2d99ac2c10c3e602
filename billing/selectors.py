from __future__ import annotations

from billing.models import CheckoutSession, CreditPack, LedgerEntry, Payment, Plan, Wallet


def balance_of(*, user) -> int:
    return Wallet.objects.filter(user=user).values_list("balance", flat=True).first() or 0


def wallet_of(*, user) -> Wallet | None:
    return Wallet.objects.filter(user=user).first()


def ledger_for(*, user):
    return LedgerEntry.objects.filter(wallet__user=user).order_by("-created_at", "-id")


def packs_on_sale():
    return CreditPack.objects.filter(active=True).order_by("order", "credits")


def plans_on_sale():
    return Plan.objects.filter(active=True).order_by("price_cents")


def checkout_for(*, user, session_id: str) -> CheckoutSession | None:
    if not session_id:
        return None
    sessions = CheckoutSession.objects.select_related("pack", "plan")
    return sessions.filter(user=user, stripe_session_id=session_id).first()


def is_pro(*, user) -> bool:
    from billing.services.payments import subscription_current

    return user.is_authenticated and subscription_current(user=user) is not None


def payments_of(*, user, limit: int = 24):
    return Payment.objects.filter(user=user).order_by("-created_at")[:limit]
