"""Admin: account erasures. Read-only: staff see what each erasure deleted and kept and whether
it finished; nothing here can change or delete a receipt (resuming is beat's job)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from privacy.models import ErasureReceipt


@admin.register(ErasureReceipt)
class ErasureReceiptAdmin(admin.ModelAdmin):
    list_display = ("uuid", "status", "requested_at", "finished_at", "files", "attempts", "receipt_sent_at")
    list_filter = ("status",)
    search_fields = ("uuid", "subject")
    readonly_fields = (
        "uuid",
        "subject",
        "status",
        "requested_at",
        "finished_at",
        "steps_done",
        "counts_display",
        "receipt_sent_at",
        "attempts",
        "last_error",
    )
    exclude = ("user", "email", "counts")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is not None  # the detail page shows it; nothing on it can be saved

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:  # read-only fields only
        return None

    @admin.display(description="Files deleted")
    def files(self, obj: ErasureReceipt) -> str:
        counts = obj.counts or {}
        return f"{counts.get('files', 0)} ({counts.get('bytes', 0)} bytes)" if counts else "—"

    @admin.display(description="What was deleted and kept")
    def counts_display(self, obj: ErasureReceipt) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.counts, indent=2, sort_keys=True))
