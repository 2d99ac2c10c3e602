"""Admin: data exports, read-only for staff (what was asked, when, how it went; never the file)."""

from __future__ import annotations

from django.contrib import admin

from privacy.models import DataExport


@admin.register(DataExport)
class DataExportAdmin(admin.ModelAdmin):
    list_display = ("requested_at", "user", "status", "files_done", "files_total", "size_bytes", "finished_at",
                    "expires_at", "downloaded_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("user__email", "uuid")
    list_select_related = ("user",)
    date_hierarchy = "requested_at"
    ordering = ("-requested_at", "-id")
    readonly_fields = [field.name for field in DataExport._meta.fields]

    # Staff look, they do not change: exports are made and expired by their services only.
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
