"""Admin: consents (current state and history) and the first-party page-view counts.

Consents are changed only by the person (or by staff through the service, method "staff",
when someone asks by email), so the admin shows them read-only: editing a row here would
skip the event and the activity record."""

from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from privacy.models import Consent, ConsentEvent, PageViewCount


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ("user", "kind", "granted", "wording_version", "updated_at")
    list_filter = ("kind", "granted")
    search_fields = ("user__email",)
    list_select_related = ("user",)


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = ("user", "kind", "granted", "wording_version", "method", "at")
    list_filter = ("kind", "granted", "method")
    search_fields = ("user__email",)
    list_select_related = ("user",)
    date_hierarchy = "at"


@admin.register(PageViewCount)
class PageViewCountAdmin(ReadOnlyAdmin):
    """Views per page per day, counted only for visitors who allowed analytics."""

    list_display = ("day", "path", "views")
    list_filter = ("day",)
    search_fields = ("path",)
    ordering = ("-day", "-views")
    date_hierarchy = "day"
