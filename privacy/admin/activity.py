"""Admin: the activity log, read-only (staff read everyone's; each person reads their own on the
privacy centre). Rows are written only by the services that caused the events."""

from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from privacy.models import ActivityEvent


@admin.register(ActivityEvent)
class ActivityEventAdmin(ReadOnlyAdmin):  # staff with the view permission read the detail page
    list_display = ("at", "user", "kind", "actor", "device", "ip")
    list_filter = ("kind", ("actor", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "actor__email")
    list_select_related = ("user", "actor")
    date_hierarchy = "at"
    ordering = ("-at", "-id")
    readonly_fields = ("user", "kind", "at", "actor", "ip", "device", "detail")
    show_full_result_count = False  # the log grows large; skip the extra COUNT(*)
