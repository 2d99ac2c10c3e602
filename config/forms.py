from __future__ import annotations

from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Every form, ours and allauth's, renders label, field, help and errors together."""

    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"
