from __future__ import annotations

import datetime as dt

from allauth.account.forms import ChangePasswordForm as AllauthChangePasswordForm
from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import ResetPasswordKeyForm as AllauthResetPasswordKeyForm
from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.socialaccount.forms import SignupForm as AllauthSocialSignupForm
from django import forms
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import services
from accounts.errors import UnderMinimumAge
from accounts.models import User, current_policy_version


class DateInput(forms.DateInput):
    input_type = "date"


def _policy_label() -> str:
    return format_html(
        'I have read and accept the <a href="{}" target="_blank">privacy policy</a> (version {}).',
        reverse("privacy:policy"),
        current_policy_version(),
    )


class AgeGateFields(forms.Form):
    """Neutral age screen plus policy acceptance, shared by every way in.

    We ask for the date of birth (not a yes/no box that invites a click-through) and keep
    only the fact that the gate was passed, never the date itself. Mixed into allauth's
    sign-up forms, so refusing the gate means the form is invalid and no account is made.
    """

    birth_date = forms.DateField(
        label="Date of birth",
        widget=DateInput(attrs={"autocomplete": "bday"}),
        help_text="We only check that you are 13 or older; the date is not stored.",
        error_messages={"required": "Enter your date of birth.", "invalid": "Enter a valid date."},
    )
    accept_policy = forms.BooleanField(
        required=True,
        error_messages={"required": "You need to accept the privacy policy to continue."},
    )
    # The version the label named when the form was shown: an acceptance is recorded for the text
    # the person saw, and a version that took effect meanwhile is shown and asked for again.
    policy_version = forms.CharField(widget=forms.HiddenInput, required=False, max_length=32)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["accept_policy"].label = _policy_label()
        self.fields["policy_version"].initial = current_policy_version()

    def clean_policy_version(self) -> str:
        shown = self.cleaned_data.get("policy_version") or ""
        current = current_policy_version()
        if shown and shown != current:
            # The new label (current version) and initial go out with the form again.
            self.data = self.data.copy()
            self.data[self.add_prefix("policy_version")] = current
            self.data.pop(self.add_prefix("accept_policy"), None)
            raise forms.ValidationError(
                f"The privacy policy changed to version {current} while this page was open. "
                "Please read it and tick the box again."
            )
        return current

    def clean_birth_date(self) -> dt.date:
        birth_date = self.cleaned_data["birth_date"]
        today = timezone.localdate()
        if birth_date > today or birth_date.year < today.year - 130:
            raise forms.ValidationError("Enter your real date of birth.")
        try:
            services.age_gate_check(birth_date=birth_date, today=today)
        except UnderMinimumAge as exc:
            raise forms.ValidationError(f"Sorry — {exc}", code="under_age") from exc
        return birth_date


class SignupForm(AgeGateFields, AllauthSignupForm):
    display_name = forms.CharField(
        label="Display name", max_length=80, required=False, help_text="Shown on your account and in the app."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order_fields(["email", "display_name", "password1", "password2", "birth_date", "accept_policy"])

    def save(self, request) -> User:
        user = super().save(request)
        if user is not None:
            services.user_accept_terms(user=user)
        return user


class SocialSignupForm(AgeGateFields, AllauthSocialSignupForm):
    """The short completion form a new Google user sees before the account exists."""

    def save(self, request) -> User:
        user = super().save(request)
        services.user_accept_terms(user=user)
        return user


class CompleteProfileForm(AgeGateFields):
    """For an existing account that has not passed the age gate or accepted the current policy."""


class ProfileForm(forms.Form):
    display_name = forms.CharField(label="Display name", max_length=80, required=False)
    remove_avatar = forms.BooleanField(label="Remove my avatar picture", required=False)


# allauth's own labels and placeholders are Title Case ("Remember Me", "New Password"); ours
# are sentences, and a field with a visible label needs no placeholder repeating it.


def _relabel(form: forms.Form, labels: dict[str, str]) -> None:
    for name, label in labels.items():
        if name in form.fields:
            form.fields[name].label = label
            form.fields[name].widget.attrs.pop("placeholder", None)


class LoginForm(AllauthLoginForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _relabel(self, {"remember": "Keep me signed in on this device"})


class ChangePasswordForm(AllauthChangePasswordForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _relabel(
            self, {"oldpassword": "Current password", "password1": "New password", "password2": "New password (again)"}
        )


class ResetPasswordKeyForm(AllauthResetPasswordKeyForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _relabel(self, {"password1": "New password", "password2": "New password (again)"})
