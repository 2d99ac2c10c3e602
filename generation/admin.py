from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet

from billing.errors import BillingError
from generation import services
from generation.errors import GenerationError
from generation.models import Asset, CatalogEntry, Generation, ProviderWebhook


@admin.register(CatalogEntry)
class CatalogEntryAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "slug",
        "kind",
        "provider",
        "provider_model",
        "credit_cost",
        "pro_only",
        "enabled",
        "order",
    )
    list_filter = ("kind", "provider", "enabled", "pro_only")
    list_editable = ("credit_cost", "pro_only", "enabled", "order")
    search_fields = ("title", "slug", "provider_model")
    prepopulated_fields = {"slug": ("title",)}


class AssetInline(admin.TabularInline):
    model = Asset
    extra = 0
    can_delete = False
    readonly_fields = ("role", "index", "storage_key", "mime_type", "bytes", "sha256", "width", "height", "created_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("uuid", "owner", "kind", "model", "status", "cost", "queued_at", "finished_at")
    list_filter = ("status", "kind", "model")
    search_fields = ("prompt", "owner__email", "uuid", "provider_prediction_id")
    list_select_related = ("owner", "model")
    readonly_fields = [f.name for f in Generation._meta.fields]
    inlines = [AssetInline]
    actions = ["retry_generations", "refund_generations"]
    date_hierarchy = "queued_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting rows here would strand reserved credits and stored files; deletion goes through
        # the owner's history controls (privacy issue), which clean both up.
        return False

    @admin.action(description="Retry (as a new job, charged to the owner)")
    def retry_generations(self, request, queryset: QuerySet[Generation]) -> None:
        done = 0
        for generation in queryset.select_related("owner", "model"):
            try:
                services.generation_retry(user=generation.owner, generation=generation)
                done += 1
            except (GenerationError, BillingError) as exc:  # report each refusal to staff, go on with the rest
                self.message_user(request, f"{generation.uuid}: {exc}", level=messages.WARNING)
        self.message_user(request, f"Queued {done} retr{'y' if done == 1 else 'ies'}.")

    @admin.action(description="Refund the credits to the owner")
    def refund_generations(self, request, queryset: QuerySet[Generation]) -> None:
        done = sum(services.generation_staff_refund(generation=g, memo="refund by Atelier staff") for g in queryset)
        self.message_user(
            request, f"Refunded {done} generation(s); the others were refunded already or have not finished."
        )


@admin.register(ProviderWebhook)
class ProviderWebhookAdmin(admin.ModelAdmin):
    list_display = ("provider", "webhook_id", "prediction_id", "received_at")
    search_fields = ("webhook_id", "prediction_id")
    readonly_fields = ("provider", "webhook_id", "prediction_id", "received_at")
