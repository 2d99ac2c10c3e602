"""Admin: data exports, read-only for staff (what was asked, when, how it went; never the file)."""

from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from privacy.models import DataExport


@admin.register(DataExport)
class DataExportAdmin(ReadOnlyAdmin):  # exports are made and expired by their services only
    list_display = ("requested_at", "user", "status", "files_done", "files_total", "size_bytes", "finished_at",
                    "expires_at", "downloaded_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("user__email", "uuid")
    list_select_related = ("user",)
    date_hierarchy = "requested_at"
    ordering = ("-requested_at", "-id")
    readonly_fields = [field.name for field in DataExport._meta.fields]
