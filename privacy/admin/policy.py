"""Admin: policy versions. Staff write drafts and publish them; a published version is part of
the record (people accepted exactly that text), so it can no longer be changed or deleted."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.utils.html import format_html

from privacy.models import PolicyVersion
from privacy.services import policy as service


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "title", "effective_at", "published", "material", "acceptance_count")
    list_filter = ("material", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("version", "title", "summary")
    ordering = ("-effective_at", "-id")
    fields = ("version", "title", "effective_at", "material", "summary", "body", "published_at", "created_at", "view")
    actions = ["publish"]

    def get_queryset(self, request) -> QuerySet[PolicyVersion]:
        return super().get_queryset(request).annotate(acceptance_total=Count("acceptances"))

    @admin.display(description="acceptances", ordering="acceptance_total")
    def acceptance_count(self, obj: PolicyVersion) -> int:
        return obj.acceptance_total

    @admin.display(boolean=True, description="published", ordering="published_at")
    def published(self, obj: PolicyVersion) -> bool:
        return obj.published_at is not None

    @admin.display(description="page")
    def view(self, obj: PolicyVersion) -> str:
        if obj.pk is None or obj.published_at is None:
            return "Shown on the site once published."
        return format_html(
            '<a href="/privacy/policy/{}/" target="_blank">/privacy/policy/{}/</a>', obj.version, obj.version
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.published_at is not None:
            return self.fields
        return ("published_at", "created_at", "view")

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or obj.published_at is None

    @admin.action(description="Publish the selected drafts (material ones email everyone)")
    def publish(self, request, queryset: QuerySet[PolicyVersion]) -> None:
        published = []
        for policy in queryset.order_by("effective_at"):
            try:
                if service.policy_publish(policy=policy):
                    published.append(policy)
            except service.PolicyError as exc:
                self.message_user(request, f"{policy.version}: {exc}", level=messages.ERROR)
        for policy in published:
            note = " Everyone will be emailed." if policy.material else ""
            self.message_user(
                request, f"Published {policy.version}, in effect from {policy.effective_at:%-d %B %Y}.{note}"
            )
        if not published:
            self.message_user(request, "Nothing new was published.", level=messages.WARNING)
