"""Stripe payments: customers, Checkout, the Customer Portal, and acting on webhook events.

Events are stored by id before anything else (`stripe_event_record`), then processed in a
Celery task (`stripe_event_process`). Processing never trusts the order or the content of
payloads: each handler reads the object back from the Stripe API and acts on what it says now.
Every credit change goes through the ledger with an idempotency key derived from the Stripe
object (`purchase:<payment_intent>`, `invoice:<invoice>`), so a replayed or redelivered event
changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from billing import stripe_api
from billing.errors import PaymentsError, PaymentsUnavailable
from billing.models import (
    DISPUTE_HOLDS,
    DISPUTE_RELEASES,
    DISPUTE_SEVERITY,
    FINAL_SUBSCRIPTION_STATUSES,
    SUBSCRIPTION_HELD_STATUSES,
    CheckoutKind,
    CheckoutSession,
    CreditPack,
    Customer,
    EventStatus,
    LedgerReason,
    Payment,
    PaymentKind,
    Plan,
    StripeEvent,
    Subscription,
)
from billing.services.ledger import credits_grant, payment_credits_settle

logger = logging.getLogger(__name__)


def payments_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


# --- customers, prices, checkout, portal --------------------------------------------------------------


def customer_ensure(*, user) -> Customer:
    """The person's Stripe Customer, created on first use (the idempotency key makes a retry safe)."""
    existing = Customer.objects.filter(user=user).first()
    if existing is not None:
        return existing
    created = stripe_api.customer_create(email=user.email, name=user.name, user_public_id=str(user.public_id))
    try:
        with transaction.atomic():
            return Customer.objects.create(user=user, stripe_customer_id=created["id"])
    except IntegrityError:
        return Customer.objects.get(user=user)


def _price_ensure(offer: CreditPack | Plan) -> str:
    """The Stripe Price id of a pack or plan: stored, else found by lookup key, else created.
    Only `manage.py stripe_prices` calls this: creating catalogue objects is never done in a request."""
    if offer.stripe_price_id:
        return offer.stripe_price_id
    interval = offer.interval if isinstance(offer, Plan) else None
    amount = offer.price_cents
    price = stripe_api.price_find(lookup_key=offer.lookup_key)
    if price is None or price.get("unit_amount") != amount or price.get("currency") != offer.currency:
        product = stripe_api.product_create(name=f"Atelier {offer.title}", key=offer.lookup_key)
        price = stripe_api.price_create(
            product=product["id"],
            unit_amount=amount,
            currency=offer.currency,
            lookup_key=offer.lookup_key,
            interval=interval,
            nickname=offer.title,
        )
    type(offer).objects.filter(pk=offer.pk).update(stripe_price_id=price["id"])
    offer.stripe_price_id = price["id"]
    return price["id"]


def stripe_prices_sync() -> list[tuple[str, str]]:
    """Create (or find) the Stripe Product/Price of every active pack and plan; returns (title, price id)."""
    if not payments_enabled():
        raise PaymentsUnavailable()
    offers: list[CreditPack | Plan] = [*CreditPack.objects.filter(active=True), *Plan.objects.filter(active=True)]
    return [(offer.title, _price_ensure(offer)) for offer in offers]


class PricesNotReady(PaymentsError):
    def __init__(self, offer: CreditPack | Plan) -> None:
        super().__init__(
            "Payments are being set up: this can't be bought just yet. Please try again in a few minutes.",
            retryable=False,
            detail=f"{offer.lookup_key} has no Stripe price: run `manage.py stripe_prices`",
        )


# Stripe expires an unpaid Checkout Session after 24 hours (its default `expires_at`).
CHECKOUT_REUSE = timedelta(hours=23)


def _reusable_checkout(*, user, pack, plan, price_id: str) -> str | None:
    """The URL of this person's still-open Checkout for the same offer and price, if there is one:
    a double click (or a second tab) lands on the same payment page instead of opening another."""
    cutoff = timezone.now() - CHECKOUT_REUSE
    candidate = (
        CheckoutSession.objects.filter(
            user=user, pack=pack, plan=plan, stripe_price_id=price_id, status="open", fulfilled_at__isnull=True
        )
        .exclude(url="")
        .filter(created_at__gte=cutoff)
        .order_by("-created_at")
        .first()
    )
    if candidate is None:
        return None
    session = stripe_api.checkout_session_get(candidate.stripe_session_id)
    if session.get("status") == "open" and session.get("url"):
        return session["url"]
    # Paid or expired meanwhile (its webhook may still be on its way): record it, start afresh.
    CheckoutSession.objects.filter(pk=candidate.pk, fulfilled_at__isnull=True).update(
        status=session.get("status") or "expired"
    )
    return None


def checkout_start(*, user, pack: CreditPack | None = None, plan: Plan | None = None) -> str:
    """Open a Stripe Checkout for a pack (one-time payment) or a plan (subscription); returns its URL.

    A still-open Checkout for the same offer is reused. Otherwise the idempotency key counts this
    person's checkouts for the offer: two requests at once (a double click, at any time of the
    minute) send the same key and get one session; a purchase after the last one was paid or
    expired counts one more and gets a new one.
    """
    if not payments_enabled():
        raise PaymentsUnavailable()
    if (pack is None) == (plan is None):
        raise ValueError("exactly one of pack or plan")
    offer = pack or plan
    if not offer.stripe_price_id:
        logger.error("checkout refused: %s has no Stripe price (run manage.py stripe_prices)", offer.lookup_key)
        raise PricesNotReady(offer)
    price_id = offer.stripe_price_id
    if plan is not None and Subscription.objects.filter(user=user, status__in=SUBSCRIPTION_HELD_STATUSES).exists():
        # Not `is_pro`: a renewal whose webhook is late must not open a second subscription.
        raise PaymentsError("You already have Pro. Manage it from your billing page.", retryable=False)
    reusable = _reusable_checkout(user=user, pack=pack, plan=plan, price_id=price_id)
    if reusable:
        return reusable
    customer = customer_ensure(user=user)
    metadata = {"user": str(user.public_id), "kind": "pack" if pack else "plan", "offer": offer.slug}
    params: dict = {
        "mode": "payment" if pack else "subscription",
        "customer": customer.stripe_customer_id,
        "client_reference_id": str(user.public_id),
        "line_items": [{"price": price_id, "quantity": 1}],
        "success_url": _absolute(reverse("billing:overview")) + "?checkout={CHECKOUT_SESSION_ID}",
        "cancel_url": _absolute(reverse("pricing")) + "?canceled=1",
        "metadata": metadata,
    }
    if pack:
        params["payment_intent_data"] = {"metadata": {**metadata, "credits": str(pack.credits)}}
    else:
        params["subscription_data"] = {"metadata": metadata}
    # Failed attempts count too: Stripe answers a reused key with its first answer, errors included,
    # for 24 hours, so the next click after a failure must send a new key.
    attempt = CheckoutSession.objects.filter(user=user, pack=pack, plan=plan).count()
    try:
        session = stripe_api.checkout_session_create(
            params=params, idempotency_key=f"checkout:{user.public_id}:{price_id}:{attempt}"
        )
    except PaymentsError:
        CheckoutSession.objects.create(
            user=user,
            stripe_session_id=f"failed:{secrets.token_hex(12)}",
            kind=CheckoutKind.PACK if pack else CheckoutKind.PLAN,
            pack=pack,
            plan=plan,
            status="failed",
            stripe_price_id=price_id,
        )
        raise
    CheckoutSession.objects.get_or_create(
        stripe_session_id=session["id"],
        defaults={
            "user": user,
            "kind": CheckoutKind.PACK if pack else CheckoutKind.PLAN,
            "pack": pack,
            "plan": plan,
            "stripe_price_id": price_id,
            "url": session.get("url") or "",
        },
    )
    return session["url"]


def portal_url(*, user) -> str:
    """A Stripe Customer Portal session (manage or cancel the subscription, cards, invoices)."""
    if not payments_enabled():
        raise PaymentsUnavailable()
    customer = Customer.objects.filter(user=user).first()
    if customer is None:
        raise PaymentsError("There is nothing to manage yet: you have not bought anything.", retryable=False)
    session = stripe_api.portal_session_create(
        customer=customer.stripe_customer_id,
        return_url=_absolute(reverse("billing:overview")),
        idempotency_key=f"portal:{customer.stripe_customer_id}:{_portal_window(customer.stripe_customer_id)}",
    )
    return session["url"]


def _portal_window(customer_id: str) -> str:
    """A token shared by the portal requests of one person within a minute of the first one (a
    double click opens one session); independent of the clock's minute boundaries. While Redis
    is down the cache counts per process (config/cache.py): at worst a double click opens two
    portal sessions, which is harmless, as they move no money."""
    return cache.get_or_set(f"billing:portal-window:{customer_id}", lambda: secrets.token_hex(8), timeout=60)


def subscription_current(*, user) -> Subscription | None:
    return next((s for s in Subscription.objects.filter(user=user).select_related("plan") if s.is_pro), None)


# --- webhook events -------------------------------------------------------------------------------------


def stripe_event_record(*, event: dict) -> tuple[StripeEvent, bool]:
    """Store a verified event by its id (unique) before anything else; True if it is new.

    The task is queued on commit. A redelivery of an event we already processed (or ignored, or
    failed for staff to look at) changes nothing; one still waiting is queued again.
    """
    with transaction.atomic():
        stored, created = StripeEvent.objects.get_or_create(
            event_id=event["id"], defaults={"type": event.get("type", ""), "payload": event}
        )
        if created or stored.status == EventStatus.RECEIVED:
            # New, or delivered again while still unprocessed (e.g. Stripe was down): (re)queue it.
            transaction.on_commit(lambda: _enqueue(stored.pk))
    return stored, created


def _enqueue(event_pk: int) -> None:
    """Queue the processing; if the broker is down, the event is stored all the same and beat's
    `requeue_stripe_events` queues it once the broker is back, so Stripe still gets its 2xx."""
    from billing.tasks import process_stripe_event

    try:
        process_stripe_event.delay(event_pk)
    except (KombuOperationalError, OSError, RedisError):
        logger.exception("could not queue stripe event %s; beat will queue it again", event_pk)


def stripe_event_process(*, event_pk: int, force: bool = False) -> str:
    """Act on one stored event; idempotent. Returns the new status.

    Raises PaymentsError(retryable=True) when Stripe could not be reached (the task retries).
    """
    event = StripeEvent.objects.get(pk=event_pk)
    if event.status in (EventStatus.PROCESSED, EventStatus.IGNORED) and not force:
        return event.status
    StripeEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    handler = HANDLERS.get(event.type)
    obj = (event.payload.get("data") or {}).get("object") or {}
    if handler is None:
        status, error = EventStatus.IGNORED, ""
    else:
        try:
            handler(obj)
            status, error = EventStatus.PROCESSED, ""
        except PaymentsError as exc:
            if exc.retryable:
                StripeEvent.objects.filter(pk=event.pk).update(error=f"{exc}: {exc.detail}")
                raise
            status, error = EventStatus.FAILED, f"{exc}: {exc.detail}"
        except UnknownCustomer as exc:
            status, error = EventStatus.FAILED, str(exc)
        except DatabaseError:
            raise  # the database hiccuped: the task retries
        except Exception as exc:
            logger.exception("stripe event %s (%s) crashed", event.event_id, event.type)
            status, error = EventStatus.FAILED, repr(exc)[:2000]
    StripeEvent.objects.filter(pk=event.pk).update(status=status, error=error, processed_at=timezone.now())
    if status == EventStatus.FAILED:
        logger.warning("stripe event %s (%s) failed: %s", event.event_id, event.type, error)
    return status


class UnknownCustomer(Exception):
    """The Stripe object belongs to no one we know (e.g. made by hand in the dashboard)."""


def _user_for_customer(customer_id: str | None):
    customer = Customer.objects.select_related("user").filter(stripe_customer_id=customer_id or "").first()
    if customer is None:
        raise UnknownCustomer(f"no Atelier customer for Stripe customer {customer_id!r}")
    return customer.user


def _id(value) -> str:
    """Stripe fields are an id or an expanded object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


# Checkout (packs) ---------------------------------------------------------------------------------------


def _on_checkout_session(obj: dict) -> None:
    session = stripe_api.checkout_session_get(obj["id"])
    CheckoutSession.objects.filter(stripe_session_id=session["id"]).update(
        status=session.get("status") or "", stripe_payment_intent_id=_id(session.get("payment_intent"))
    )
    if session.get("mode") == "subscription":
        subscription_id = _id(session.get("subscription"))
        if subscription_id:
            _subscription_sync(subscription_id)
            CheckoutSession.objects.filter(stripe_session_id=session["id"], fulfilled_at__isnull=True).update(
                fulfilled_at=timezone.now()
            )
        return
    if session.get("payment_status") != "paid":
        return  # e.g. a bank debit still pending: async_payment_succeeded comes later
    payment_intent = _id(session.get("payment_intent"))
    if payment_intent:
        _fulfil_pack(payment_intent_id=payment_intent)


def _on_checkout_session_ended(obj: dict) -> None:
    """Expired unpaid, or an async payment (bank debit) failed: the waiting page says so."""
    session = stripe_api.checkout_session_get(obj["id"])
    status = "expired" if session.get("status") == "expired" else "failed"
    CheckoutSession.objects.filter(stripe_session_id=session["id"], fulfilled_at__isnull=True).update(status=status)


def _on_payment_intent_succeeded(obj: dict) -> None:
    """Credits for a pack may be granted from here if it arrives before the checkout event."""
    metadata = obj.get("metadata") or {}
    if metadata.get("kind") == "pack":
        _fulfil_pack(payment_intent_id=obj["id"])


def _fulfil_pack(*, payment_intent_id: str) -> None:
    """Grant a pack's credits once per PaymentIntent, whichever event gets here first."""
    intent = stripe_api.payment_intent_get(payment_intent_id)
    if intent.get("status") != "succeeded":
        return
    metadata = intent.get("metadata") or {}
    pack = CreditPack.objects.filter(slug=metadata.get("offer", "")).first()
    if metadata.get("kind") != "pack" or pack is None:
        detail = f"payment intent {payment_intent_id} {metadata}"
        raise PaymentsError("Unknown purchase.", retryable=False, detail=detail)
    # What was sold is in the metadata; the pack row may have been edited since.
    credits = int(metadata["credits"]) if str(metadata.get("credits", "")).isdigit() else pack.credits
    user = _user_for_customer(_id(intent.get("customer")))
    key = f"purchase:{payment_intent_id}"
    charge = _charge(intent.get("latest_charge"))
    _grant_for_payment(
        key=key,
        defaults={
            "user": user,
            "kind": PaymentKind.PACK,
            "stripe_payment_intent_id": payment_intent_id,
            "stripe_charge_id": _id(charge),
            "amount_cents": intent.get("amount_received") or intent.get("amount") or 0,
            "currency": intent.get("currency") or pack.currency,
            "credits": credits,
            "receipt_url": (charge or {}).get("receipt_url") or "",
        },
        reason=LedgerReason.PURCHASE,
        reference=f"stripe:{payment_intent_id}",
        memo=f"{credits} credits",
        email=("credits_added", {"pack": pack}),
        charge=charge,
    )
    CheckoutSession.objects.filter(stripe_payment_intent_id=payment_intent_id, fulfilled_at__isnull=True).update(
        fulfilled_at=timezone.now()
    )


def _grant_for_payment(
    *, key: str, defaults: dict, reason: str, reference: str, memo: str, email: tuple[str, dict], charge: dict | None
) -> Payment:
    """Record a paid Stripe payment and grant its credits, both once per `key`; email the first
    time; then apply a refund or dispute that may already have happened to its charge."""
    with transaction.atomic():
        payment, created = Payment.objects.get_or_create(idempotency_key=key, defaults=defaults)
        credits_grant(
            user=payment.user,
            amount=payment.credits,
            reason=reason,
            reference=reference,
            idempotency_key=key,
            memo=memo,
        )
        if created:
            template, context = email
            transaction.on_commit(lambda: _email(payment.user, template, {**context, "payment": payment}))
    if charge:
        _payment_settle(payment, _id(charge))  # refunded or disputed before we got to grant it
    return payment


def _charge(value) -> dict | None:
    """A Charge from a field that holds its id (today's API) or the object itself."""
    if isinstance(value, dict):
        return value
    return stripe_api.charge_get(value) if value else None


# Subscriptions ---------------------------------------------------------------------------------------------


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


@transaction.atomic
def _subscription_sync(subscription_id: str) -> Subscription:
    """Mirror a subscription as the API reports it now (status, plan, period end, cancel flag).

    The row (when we have one) is locked before Stripe is read, so two workers syncing it take
    turns and the later read is the one that stays."""
    locked = Subscription.objects.select_for_update().filter(stripe_subscription_id=subscription_id).first()
    data = stripe_api.subscription_get(subscription_id)
    user = _user_for_customer(_id(data.get("customer")))
    items = (data.get("items") or {}).get("data") or []
    price_ids = [_id(item.get("price")) or _id(item.get("plan")) for item in items]
    plan = Plan.objects.filter(stripe_price_id__in=[p for p in price_ids if p]).first()
    if plan is None:
        plan = Plan.objects.filter(slug=(data.get("metadata") or {}).get("offer", "")).first()
    # Newer API versions keep the period on the items; older ones on the subscription.
    period_end = data.get("current_period_end") or max(
        (item.get("current_period_end") or 0 for item in items), default=0
    )
    status = data.get("status") or "incomplete"
    known = locked.status if locked is not None else None
    if known in FINAL_SUBSCRIPTION_STATUSES and status != known:
        # Stripe never revives a canceled subscription: a differing read is stale, not news.
        logger.warning("subscription %s read as %s after %s; keeping %s", data["id"], status, known, known)
        status = known
    subscription, _ = Subscription.objects.update_or_create(
        stripe_subscription_id=data["id"],
        defaults={
            "user": user,
            "plan": plan,
            "status": status,
            "current_period_end": _timestamp(period_end),
            "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
            "cancel_at": _timestamp(data.get("cancel_at")),
        },
    )
    return subscription


def _on_subscription_event(obj: dict) -> None:
    _subscription_sync(obj["id"])


# None: older API versions and localstripe don't say; anything else (prorations, manual) grants nothing.
GRANTING_REASONS = {None, "subscription_create", "subscription_cycle"}


def _invoice_subscription_id(invoice: dict) -> str:
    parent = (invoice.get("parent") or {}).get("subscription_details") or {}
    return _id(invoice.get("subscription")) or _id(parent.get("subscription"))


def _on_invoice_paid(obj: dict) -> None:
    """Grant the plan's monthly credits once per paid subscription invoice."""
    invoice = stripe_api.invoice_get(obj["id"])
    if invoice.get("status") != "paid":
        return
    subscription_id = _invoice_subscription_id(invoice)
    if not subscription_id:
        return  # not a subscription invoice
    if invoice.get("billing_reason") not in GRANTING_REASONS:
        return  # prorations, manual invoices: no new month of credits
    subscription = _subscription_sync(subscription_id)
    plan = subscription.plan
    if plan is None:
        raise PaymentsError("Unknown plan.", retryable=False, detail=f"subscription {subscription_id} has no plan")
    key = f"invoice:{invoice['id']}"
    # Since API 2025-03-31 an invoice names its PaymentIntent only through its invoice payments.
    intent_id = _id(invoice.get("payment_intent")) or stripe_api.invoice_payment_intent(invoice["id"])
    charge = _charge(invoice.get("charge")) or (
        _charge(stripe_api.payment_intent_get(intent_id).get("latest_charge")) if intent_id else None
    )
    _grant_for_payment(
        key=key,
        defaults={
            "user": subscription.user,
            "kind": PaymentKind.SUBSCRIPTION,
            "stripe_invoice_id": invoice["id"],
            "stripe_payment_intent_id": intent_id,
            "stripe_charge_id": _id(charge),
            "amount_cents": invoice.get("amount_paid") or 0,
            "currency": invoice.get("currency") or plan.currency,
            "credits": plan.monthly_credits,
            "receipt_url": invoice.get("hosted_invoice_url") or "",
        },
        reason=LedgerReason.SUBSCRIPTION,
        reference=f"stripe:{invoice['id']}",
        memo=f"{plan.title} · {invoice.get('number') or invoice['id']}",
        email=("subscription_renewed", {"plan": plan, "subscription": subscription}),
        charge=charge,
    )


def _on_invoice_payment_failed(obj: dict) -> None:
    invoice = stripe_api.invoice_get(obj["id"])
    subscription_id = _invoice_subscription_id(invoice)
    subscription = _subscription_sync(subscription_id) if subscription_id else None
    user = subscription.user if subscription else _user_for_customer(_id(invoice.get("customer")))
    _email(user, "payment_failed", {"invoice": invoice, "subscription": subscription})


# Refunds and disputes ------------------------------------------------------------------------------------


def _payment_for_charge(charge_id: str) -> Payment | None:
    """The payment a charge paid for. Known charges are found in the database; only an unknown
    one is read from Stripe (to find it by its PaymentIntent or invoice)."""
    found = Payment.objects.filter(stripe_charge_id=charge_id).first()
    if found is not None:
        return found
    charge = stripe_api.charge_get(charge_id)
    intent = _id(charge.get("payment_intent"))
    invoice = _id(charge.get("invoice"))
    if intent:
        found = Payment.objects.filter(stripe_payment_intent_id=intent).first()
    if found is None and not invoice and intent:
        invoice = stripe_api.invoice_for_payment_intent(intent)
    if found is None and invoice:
        found = Payment.objects.filter(stripe_invoice_id=invoice).first()
    if found is not None and not found.stripe_charge_id:
        Payment.objects.filter(pk=found.pk).update(stripe_charge_id=charge_id)
    return found


def _on_charge_event(obj: dict) -> None:
    """A refund (or its update): settle the payment against its charge as Stripe reports it now."""
    charge_id = _id(obj.get("charge")) if obj.get("object") == "refund" else obj["id"]
    payment = _payment_for_charge(charge_id)
    if payment is None:
        logger.info("refund on charge %s that granted no credits", charge_id)
        return
    _payment_settle(payment, charge_id)


def _on_dispute(obj: dict) -> None:
    """Any dispute event: settle its payment against the charge and all of the charge's disputes,
    as Stripe reports them now (`_payment_settle` lists them; the payload only names the charge)."""
    charge_id = _id(obj.get("charge"))
    payment = _payment_for_charge(charge_id)
    if payment is None:
        logger.warning("dispute %s on charge %s that granted no credits", obj.get("id"), charge_id)
        return
    _payment_settle(payment, charge_id)


def _payment_settle(payment: Payment, charge_id: str) -> None:
    """Bring the credits a payment has had taken back to what its charge's refunds and disputes
    say now. Never reads `charge.disputed` (it stays true after a win).

    The payment row is locked *before* Stripe is read: two workers settling the same payment
    (say, a dispute's `under_review` and its `won` delivered at once) take turns, and the second
    reads Stripe after the first has written, so the last write is always the latest state.
    """
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        charge = stripe_api.charge_get(charge_id)
        disputes = stripe_api.disputes_for_charge(charge_id)
        target, status = payment_reversal_target(payment=payment, charge=charge, disputes=disputes)
        if status in DISPUTE_HOLDS:
            reason = "Payment disputed"
        elif target < payment.credits_reversed:
            reason = "Dispute closed in your favour"
        else:
            reason = "Payment refunded"
        payment_credits_settle(payment=payment, target=target, dispute_status=status, reason=reason)


def payments_settle_all(*, report=None) -> int:
    """Settle every payment that was ever refunded or disputed again (see the
    `stripe_settle_payments` command). Returns how many changed."""
    if not payments_enabled():
        raise PaymentsUnavailable()
    changed = 0
    candidates = Payment.objects.exclude(stripe_charge_id="").filter(Q(credits_reversed__gt=0) | ~Q(dispute_status=""))
    for payment in candidates.order_by("pk").iterator():
        before = (payment.credits_reversed, payment.dispute_status)
        _payment_settle(payment, payment.stripe_charge_id)
        payment.refresh_from_db(fields=["credits_reversed", "dispute_status"])
        after = (payment.credits_reversed, payment.dispute_status)
        if after != before:
            changed += 1
            if report:
                report(f"payment {payment.pk} ({payment.stripe_charge_id}): taken back {before} -> {after}")
    return changed


def payment_reversal_target(*, payment: Payment, charge: dict, disputes: list[dict]) -> tuple[int, str]:
    """How many of a payment's credits must be taken back now, and its dispute status.

    Refunds take their share of the credits (all of them once the charge is fully refunded).
    A dispute holds back the share of its amount while Stripe has withdrawn the funds
    (`needs_response`, `under_review`, an appeal) and for good once `lost`; an inquiry
    (`warning_*`) withdraws nothing and takes nothing; `won`, `warning_closed` and `prevented`
    take nothing. A status Stripe adds later holds, until someone decides otherwise.
    With several disputes, the status reported is the most serious one.
    """
    amount = charge.get("amount") or payment.amount_cents or 1
    refunded = min(charge.get("amount_refunded") or 0, amount)
    if charge.get("refunded") or refunded >= amount:
        refund_share = payment.credits
    else:
        refund_share = (payment.credits * refunded) // amount
    dispute_share, statuses = 0, []
    for dispute in disputes:
        status = dispute.get("status") or ""
        statuses.append(status)
        if status in DISPUTE_RELEASES:
            continue
        if status not in DISPUTE_HOLDS:
            logger.warning("dispute %s has a status we don't know (%r): holding its credits", dispute.get("id"), status)
        disputed = dispute.get("amount") or 0
        if disputed >= amount - refunded:
            dispute_share = payment.credits  # the whole remaining charge
        else:
            dispute_share += (payment.credits * disputed) // amount
    known = [s for s in statuses if s in DISPUTE_SEVERITY]
    unknown = [s for s in statuses if s not in DISPUTE_SEVERITY]
    status = (unknown or sorted(known, key=DISPUTE_SEVERITY.index) or [""])[0]
    return min(payment.credits, refund_share + dispute_share), status[:24]


HANDLERS = {
    "checkout.session.completed": _on_checkout_session,
    "checkout.session.async_payment_succeeded": _on_checkout_session,
    "checkout.session.async_payment_failed": _on_checkout_session_ended,
    "checkout.session.expired": _on_checkout_session_ended,
    "payment_intent.succeeded": _on_payment_intent_succeeded,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_invoice_payment_failed,
    "customer.subscription.created": _on_subscription_event,
    "customer.subscription.updated": _on_subscription_event,
    "customer.subscription.deleted": _on_subscription_event,
    "charge.refunded": _on_charge_event,
    "charge.refund.updated": _on_charge_event,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.closed": _on_dispute,
    "charge.dispute.funds_withdrawn": _on_dispute,
    "charge.dispute.funds_reinstated": _on_dispute,
}


# --- emails --------------------------------------------------------------------------------------------------

SUBJECTS = {
    "credits_added": "Your credits are in",
    "subscription_renewed": "Your Pro credits for this month",
    "payment_failed": "We could not take your payment",
}


def _email(user, template: str, context: dict) -> None:
    context = {**context, "user": user, "billing_url": _absolute(reverse("billing:overview"))}
    body = render_to_string(f"billing/email/{template}.txt", context)
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + SUBJECTS[template]
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
    except (OSError, smtplib.SMTPException):
        # The credits are in either way; a lost email must not undo or block the payment.
        logger.exception("could not send the %s email to user %s", template, user.pk)


def stripe_events_requeue(*, older_than_seconds: int = 300, max_attempts: int = 50) -> int:
    """Beat: queue again events still unprocessed after a while (Stripe or our worker was down)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    pending = StripeEvent.objects.filter(status=EventStatus.RECEIVED, received_at__lt=cutoff, attempts__lt=max_attempts)
    ids = list(pending.values_list("pk", flat=True)[:500])
    for pk in ids:
        _enqueue(pk)
    return len(ids)


def stripe_event_payloads_purge(*, processed_before, limit: int = 500) -> int:
    """Retention (privacy.services.retention): blank the stored payload of events processed or
    ignored before `processed_before`. The row and its event id stay, so a redelivery of the same
    event is still recognised and skipped. Bounded per call; returns how many were blanked."""
    done = StripeEvent.objects.filter(
        status__in=[EventStatus.PROCESSED, EventStatus.IGNORED], received_at__lt=processed_before
    ).exclude(payload={})
    ids = list(done.order_by("pk").values_list("pk", flat=True)[:limit])
    return StripeEvent.objects.filter(pk__in=ids).update(payload={})
