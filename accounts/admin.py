from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("-date_joined",)
    list_display = ("email", "display_name", "is_active", "is_staff", "date_joined", "policy_version")
    list_filter = ("is_active", "is_staff", "policy_version")
    search_fields = ("email", "display_name", "public_id")
    readonly_fields = ("public_id", "date_joined", "last_login", "age_confirmed_at", "policy_accepted_at")
    fieldsets = (
        (None, {"fields": ("email", "password", "public_id")}),
        ("Profile", {"fields": ("display_name", "avatar_url")}),
        ("Consent", {"fields": ("age_confirmed_at", "policy_accepted_at", "policy_version")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_delete_permission(self, request, obj=None) -> bool:
        # An account is deleted only by erasure (privacy centre): storage, the Stripe customer,
        # detached money records and the receipt. A bare row delete here would skip all of it.
        return False
