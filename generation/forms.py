from __future__ import annotations

from django import forms
from django.conf import settings

from generation import catalog
from generation.models import CatalogEntry

TABS = {"image": "text_to_image", "edit": "image_to_image", "3d": "image_to_3d"}


class CreateForm(forms.Form):
    """Every parameter any model may take; the chosen model's spec decides which are shown and used."""

    model = forms.ModelChoiceField(queryset=CatalogEntry.objects.none(), to_field_name="slug", empty_label=None)
    prompt = forms.CharField(
        label="Prompt",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "data-counter": "", "placeholder": "A lighthouse at dawn, calm sea"}),
    )
    negative_prompt = forms.CharField(
        label="Negative prompt", required=False, max_length=1000, help_text="What you don't want to see."
    )
    # Pickers (radio buttons drawn as shapes and swatches by _model_fields.html).
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio",
        required=False,
        choices=[(r, r) for r in catalog.ASPECT_RATIOS],
        widget=forms.RadioSelect,
    )
    style = forms.ChoiceField(
        label="Style",
        required=False,
        choices=[(key, label) for key, (label, _) in catalog.STYLE_PRESETS.items()],
        widget=forms.RadioSelect,
        initial="none",
    )
    num_outputs = forms.TypedChoiceField(
        label="Variations",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(n, str(n)) for n in range(1, catalog.MAX_OUTPUTS + 1)],
        widget=forms.RadioSelect,
        initial=1,
        help_text="Several takes on the same prompt; each costs the model's price.",
    )
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        min_value=0,
        max_value=2**31 - 1,
        help_text="Empty: a new picture each time. Same seed + same prompt = same picture.",
        widget=forms.NumberInput(attrs={"placeholder": "Random"}),
    )
    strength = forms.FloatField(
        label="Strength",
        required=False,
        min_value=0.05,
        max_value=1.0,
        widget=forms.NumberInput(attrs={"type": "range", "step": "0.05", "min": "0.05", "max": "1"}),
        help_text="Low keeps your picture; high lets the edit move far from it.",
    )
    image = forms.FileField(
        label="Upload an image",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        help_text=f"PNG, JPEG or WebP, up to {settings.INPUT_MAX_BYTES // (1024 * 1024)} MB.",
    )
    # A picture already on our side (see GenerationSpec): kept across a refused form, or chosen
    # with "Edit this" / "Make 3D from this" / a remix. Checked for ownership by the service.
    source_asset = forms.CharField(required=False, widget=forms.HiddenInput)
    pending_upload = forms.CharField(required=False, widget=forms.HiddenInput)
    image_url = forms.URLField(
        label="…or paste an image link",
        required=False,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://…"}),
    )

    def __init__(self, *args, models, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models
        first = models.first()
        if first is not None and not self.is_bound:
            self.initial.setdefault("model", first.slug)
        # The chosen model decides what is required (and so what the labels call optional).
        entry = self.selected_model()
        if catalog.ratio_choices(entry):  # only the ratios this model's own schema accepts
            self.fields["aspect_ratio"].choices = catalog.ratio_choices(entry)
            self.fields["aspect_ratio"].initial = entry.parameters["aspect_ratio"].get("default")
        prompt_rule = ((entry.parameters or {}) if entry else {}).get("prompt") or {}
        limit = int(prompt_rule.get("max_length", 2000))
        self.fields["prompt"].max_length = limit
        self.fields["prompt"].widget.attrs["maxlength"] = str(limit)
        if entry is not None and "strength" in entry.parameters:
            self.fields["strength"].initial = entry.parameters["strength"].get("default")
        for name, rule in ((entry.parameters or {}) if entry else {}).items():
            if name in self.fields and name != "image" and rule.get("required"):
                self.fields[name].required = True
                self.fields[name].error_messages["required"] = catalog.required_message(name)

    def selected_model(self) -> CatalogEntry | None:
        slug = self.data.get("model") if self.is_bound else self.initial.get("model")
        models = self.fields["model"].queryset
        return models.filter(slug=slug).first() or models.first()

    def parameter_fields(self) -> list:
        """The bound fields the selected model accepts, in a stable order."""
        entry = self.selected_model()
        if entry is None:
            return []
        accepted = set(entry.parameters)
        names = ["prompt", "negative_prompt", "aspect_ratio", "style", "strength", "num_outputs", "seed"]
        return [self[name] for name in names if name in accepted]

    def needs_image(self) -> bool:
        entry = self.selected_model()
        return entry is not None and "image" in entry.parameters

    @property
    def picks(self) -> dict[str, str]:
        """The values the pickers show as chosen: what was posted, else the initial value."""
        values = {}
        for name in ("aspect_ratio", "style", "num_outputs", "strength"):
            value = self[name].value()
            values[name] = "" if value in (None, "") else str(value)
        if not values["num_outputs"]:
            values["num_outputs"] = "1"
        if not values["style"]:
            values["style"] = "none"
        return values
