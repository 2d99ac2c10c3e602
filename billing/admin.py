from __future__ import annotations

from django.contrib import admin

from billing.models import CreditReservation, LedgerEntry, Wallet


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
    list_display = ("user", "balance", "updated_at")
    search_fields = ("user__email",)
    list_select_related = ("user",)
    inlines = [LedgerInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "wallet", "amount", "balance_after", "reason", "reference")
    list_filter = ("reason",)
    search_fields = ("wallet__user__email", "reference", "idempotency_key")
    list_select_related = ("wallet__user",)


@admin.register(CreditReservation)
class CreditReservationAdmin(ReadOnlyAdmin):
    list_display = ("reference", "wallet", "amount", "status", "created_at", "settled_at")
    list_filter = ("status",)
    search_fields = ("reference", "wallet__user__email")
