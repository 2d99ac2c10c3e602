from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import DatabaseError
from django.db.models import QuerySet

from billing.errors import BillingError
from billing.models import (
    CheckoutSession,
    CreditAdjustment,
    CreditPack,
    CreditReservation,
    Customer,
    LedgerEntry,
    Payment,
    Plan,
    StripeEvent,
    Subscription,
    Wallet,
)
from billing.services import credits_adjust
from billing.services.payments import stripe_event_process
from config.admin import ReadOnlyAdmin


class LedgerInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    fields = ("created_at", "amount", "balance_after", "reason", "reference", "memo")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    can_delete = False
    max_num = 0


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("user", "subject", "balance", "debt", "disputed_at", "updated_at")
    list_filter = (("disputed_at", admin.EmptyFieldListFilter),)
    # `subject`: the pseudonymous id of an erased account's kept wallet (its user is empty then).
    search_fields = ("user__email", "=subject")
    list_select_related = ("user",)
    inlines = [LedgerInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "wallet", "amount", "balance_after", "reason", "reference")
    list_filter = ("reason",)
    search_fields = ("wallet__user__email", "=wallet__subject", "reference", "idempotency_key")
    list_select_related = ("wallet__user",)


@admin.register(CreditReservation)
class CreditReservationAdmin(ReadOnlyAdmin):
    list_display = ("reference", "wallet", "amount", "status", "created_at", "settled_at")
    list_filter = ("status",)
    search_fields = ("reference", "wallet__user__email")


class CreditAdjustmentForm(forms.ModelForm):
    class Meta:
        model = CreditAdjustment
        fields = ("user", "amount", "reason")
        help_texts = {"reason": "Required. Kept with the ledger entry and shown to the person."}

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Enter a positive amount to add or a negative one to take away.")
        return amount

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason

    def clean(self):
        data = super().clean()
        user, amount = data.get("user"), data.get("amount")
        if user is not None and amount is not None and amount < 0:
            balance = Wallet.objects.filter(user=user).values_list("balance", flat=True).first() or 0
            if -amount > balance:
                raise forms.ValidationError(f"{user.email} has only {balance} credits; the balance can't go below 0.")
        return data


@admin.register(CreditAdjustment)
class CreditAdjustmentAdmin(admin.ModelAdmin):
    """Grant or revoke credits by hand: always through the ledger, always with a reason."""

    form = CreditAdjustmentForm
    list_display = ("created_at", "user", "amount", "reason", "staff")
    search_fields = ("user__email", "=subject", "reason")
    autocomplete_fields = ("user",)
    list_select_related = ("user", "staff")

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        # The form checked the balance; should it change in between, the ledger refuses and
        # nothing is recorded (the transaction of the admin view rolls back).
        adjustment = credits_adjust(user=obj.user, amount=obj.amount, reason=obj.reason, staff=request.user)
        obj.pk = adjustment.pk


class PriceRowAdmin(admin.ModelAdmin):
    """Changing what something costs makes its Stripe Price stale. The row forgets it, and it can't be
    bought ("payments are being set up") until `manage.py stripe_prices` publishes the new price:
    Stripe catalogue objects are never created inside a web request."""

    price_fields = ("price_cents", "currency")

    def save_model(self, request, obj, form, change) -> None:
        repriced = (
            change
            and any(name in form.changed_data for name in self.price_fields)
            and "stripe_price_id" not in (form.changed_data)
        )
        if repriced or not obj.stripe_price_id:
            obj.stripe_price_id = ""
            self.message_user(
                request,
                f"“{obj}” needs a Stripe price: run `manage.py stripe_prices`. Until then it can't be bought.",
                level=messages.WARNING,
            )
        super().save_model(request, obj, form, change)


@admin.register(CreditPack)
class CreditPackAdmin(PriceRowAdmin):
    list_display = ("title", "slug", "credits", "price_cents", "currency", "stripe_price_id", "active", "order")
    list_editable = ("active", "order")


@admin.register(Plan)
class PlanAdmin(PriceRowAdmin):
    price_fields = ("price_cents", "currency", "interval")
    list_display = ("title", "slug", "monthly_credits", "price_cents", "interval", "stripe_price_id", "active")


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ("user", "stripe_customer_id", "created_at")
    search_fields = ("user__email", "stripe_customer_id")
    list_select_related = ("user",)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("user", "plan", "status", "current_period_end", "cancel_at_period_end", "updated_at")
    list_filter = ("status", "plan", "cancel_at_period_end")
    search_fields = ("user__email", "stripe_subscription_id")
    list_select_related = ("user", "plan")


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "subject",
        "kind",
        "amount_cents",
        "currency",
        "credits",
        "credits_reversed",
        "dispute_status",
    )
    list_filter = ("kind", "dispute_status")
    search_fields = ("user__email", "=subject", "stripe_payment_intent_id", "stripe_invoice_id", "stripe_charge_id")
    list_select_related = ("user",)


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "kind", "pack", "plan", "status", "fulfilled_at")
    list_filter = ("kind", "status")
    search_fields = ("user__email", "stripe_session_id")
    list_select_related = ("user", "pack", "plan")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "type", "event_id", "status", "attempts", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("event_id", "type")
    readonly_fields = ("event_id", "type", "payload", "status", "error", "attempts", "received_at", "processed_at")
    actions = ["reprocess"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is not None  # the detail page shows the payload; nothing on it can be saved

    def save_model(self, request, obj, form, change) -> None:  # read-only fields only
        return None

    @admin.action(description="Reprocess the selected events")
    def reprocess(self, request, queryset: QuerySet[StripeEvent]) -> None:
        results = []
        for event in queryset:
            try:
                results.append(stripe_event_process(event_pk=event.pk, force=True))
            except (BillingError, DatabaseError) as exc:
                self.message_user(request, f"{event.event_id}: {exc}", level=messages.WARNING)
        self.message_user(request, f"Reprocessed {len(results)} event(s): {', '.join(results) or 'none'}.")
