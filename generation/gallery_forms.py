"""The gallery's query-string filters, and the typed confirmation for deleting a whole history."""

from __future__ import annotations

from django import forms

from generation.models import CatalogEntry, Kind, Status
from generation.selectors import GalleryFilters

HISTORY_CONFIRMATION = "delete my history"


class GalleryFilterForm(forms.Form):
    """Bound to request.GET: a link reproduces the view. Invalid values are dropped, not shown
    as errors (a hand-edited or old link still shows a gallery)."""

    q = forms.CharField(required=False, max_length=200, label="Search prompts")
    kind = forms.ChoiceField(required=False, choices=[("", "All kinds"), *Kind.choices], label="Kind")
    model = forms.ChoiceField(required=False, label="Model")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Status.choices], label="Status")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    fav = forms.BooleanField(required=False, label="Favourites only")

    def __init__(self, *args, models: list[CatalogEntry], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "All models"), *((m.slug, m.title) for m in models)]

    def filters(self) -> GalleryFilters:
        self.is_valid()
        data = {name: self.cleaned_data.get(name) for name in self.fields if name not in self.errors}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            since, until = until, since  # a reversed range means the same days
        return GalleryFilters(
            kind=data.get("kind") or "",
            model=data.get("model") or "",
            status=data.get("status") or "",
            since=since,
            until=until,
            favorites=bool(data.get("fav")),
            q=" ".join((data.get("q") or "").split()),
        )


class HistoryDeleteForm(forms.Form):
    confirmation = forms.CharField(
        label=f'Type "{HISTORY_CONFIRMATION}" to confirm',
        max_length=50,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}),
    )

    def clean_confirmation(self) -> str:
        value = " ".join(self.cleaned_data["confirmation"].lower().split())
        if value != HISTORY_CONFIRMATION:
            raise forms.ValidationError(f'Type "{HISTORY_CONFIRMATION}" exactly, or go back to keep your history.')
        return value
