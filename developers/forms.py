from __future__ import annotations

from django import forms

from developers.models import WebhookEvent


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(
        max_length=500,
        label="Endpoint URL",
        assume_scheme="https",
        help_text="An https:// address on the public internet that accepts POST requests.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/webhooks/atelier", "autocomplete": "off"}),
    )
    description = forms.CharField(
        max_length=100,
        required=False,
        label="Description",
        help_text="What receives it, e.g. “Production server”.",
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        initial=list(WebhookEvent.values),
        widget=forms.CheckboxSelectMultiple,
        label="Events to send",
        error_messages={"required": "Choose at least one event."},
    )
