from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing import selectors, stripe_api
from billing.errors import BillingError, PaymentsError
from billing.models import CreditPack, Customer, EventStatus, Plan
from billing.services import payments
from config.celery import app as celery_app

logger = logging.getLogger(__name__)


def _allow_stripe_forms(response: HttpResponse) -> HttpResponse:
    """Our checkout and portal forms answer with a redirect to Stripe, and CSP's form-action also
    governs where a form submission may be redirected: allow Stripe's hosted pages."""
    origins = ["https://checkout.stripe.com", "https://billing.stripe.com"]
    if settings.STRIPE_API_BASE:  # a local Stripe stand-in (tests, development)
        origins.append("/".join(settings.STRIPE_API_BASE.split("/")[:3]))
    response._csp_update = {"form-action": origins}
    return response


def pricing(request: HttpRequest) -> HttpResponse:
    context = {
        "packs": selectors.packs_on_sale(),
        "plans": selectors.plans_on_sale(),
        "payments_enabled": payments.payments_enabled(),
        "free_credits": settings.FREE_CREDITS_ON_SIGNUP,
        "current": payments.subscription_current(user=request.user) if request.user.is_authenticated else None,
        "canceled": request.GET.get("canceled") == "1",
    }
    return _allow_stripe_forms(render(request, "billing/pricing.html", context))


def _invoices(user) -> tuple[list[dict], bool]:
    """Invoices and receipts from Stripe; ([], True) when Stripe cannot be reached right now."""
    customer = Customer.objects.filter(user=user).first()
    if customer is None or not payments.payments_enabled():
        return [], False
    try:
        return stripe_api.invoices_list(customer=customer.stripe_customer_id), False
    except BillingError as exc:
        logger.warning("invoices for %s unavailable: %s", user.pk, getattr(exc, "detail", exc))
        return [], True


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.ledger_for(user=request.user), 20).get_page(request.GET.get("page"))
    invoices, invoices_unavailable = _invoices(request.user)
    context = {
        "wallet": selectors.wallet_of(user=request.user),
        "balance": selectors.balance_of(user=request.user),
        "page": page,
        "subscription": payments.subscription_current(user=request.user),
        "payments_enabled": payments.payments_enabled(),
        "invoices": invoices,
        "purchases": selectors.payments_of(user=request.user),
        "invoices_unavailable": invoices_unavailable,
        "checkout": selectors.checkout_for(user=request.user, session_id=request.GET.get("checkout", "")),
    }
    return _allow_stripe_forms(render(request, "billing/overview.html", context))


@login_required
@require_GET
def checkout_status(request: HttpRequest) -> HttpResponse:
    """htmx: polled while a payment is processing; stops polling once the credits are in."""
    context = {
        "checkout": selectors.checkout_for(user=request.user, session_id=request.GET.get("checkout", "")),
        "balance": selectors.balance_of(user=request.user),
    }
    response = render(request, "billing/_checkout_status.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _go_to_stripe(request: HttpRequest, start) -> HttpResponse:
    try:
        url = start()
    except BillingError as exc:
        if isinstance(exc, PaymentsError):
            logger.warning("stripe checkout/portal failed for %s: %s", request.user.pk, exc.detail)
        messages.error(request, str(exc))
        return redirect("pricing")
    return HttpResponseRedirect(url, status=303)


@login_required
@require_POST
def checkout_pack(request: HttpRequest, slug: str) -> HttpResponse:
    pack = get_object_or_404(CreditPack, slug=slug, active=True)
    return _go_to_stripe(request, lambda: payments.checkout_start(user=request.user, pack=pack))


@login_required
@require_POST
def checkout_plan(request: HttpRequest, slug: str) -> HttpResponse:
    plan = get_object_or_404(Plan, slug=slug, active=True)
    return _go_to_stripe(request, lambda: payments.checkout_start(user=request.user, plan=plan))


@login_required
@require_POST
def portal(request: HttpRequest) -> HttpResponse:
    return _go_to_stripe(request, lambda: payments.portal_url(user=request.user))


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Verify the signature, store the event by id, answer fast; a task does the work."""
    if not payments.payments_enabled() or not settings.STRIPE_WEBHOOK_SECRET:
        return JsonResponse({"error": "payments are not configured"}, status=400)
    signature = request.headers.get("Stripe-Signature", "")
    try:
        event = stripe_api.webhook_event(payload=request.body, signature=signature)
    except stripe_api.WebhookSignatureError as exc:
        logger.warning("stripe webhook refused: %s", exc)
        return JsonResponse({"error": "invalid signature"}, status=400)
    except ValueError as exc:
        logger.warning("stripe webhook refused: %s", exc)
        return JsonResponse({"error": f"invalid payload: {exc}"}, status=400)
    if not event.get("id") or not event.get("type"):
        return JsonResponse({"error": "not an event"}, status=400)
    stored, created = payments.stripe_event_record(event=event)
    if celery_app.conf.task_always_eager:
        # Inline (no broker): the event was processed in this request. If Stripe could not be
        # reached, say so, and Stripe delivers it again later; we then process it again.
        stored.refresh_from_db(fields=["status", "error"])
        if stored.status == EventStatus.RECEIVED and stored.error:
            return JsonResponse({"status": "stored, not processed yet"}, status=503)
    return JsonResponse({"status": "accepted" if created else "duplicate"})
