"""The model catalog, generations and their assets."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Kind(models.TextChoices):
    TEXT_TO_IMAGE = "text_to_image", "Image"
    IMAGE_TO_IMAGE = "image_to_image", "Edit"
    IMAGE_TO_3D = "image_to_3d", "3D"


class Provider(models.TextChoices):
    REPLICATE = "replicate", "Replicate"
    LOCAL = "local", "Local (offline)"


class CatalogEntry(models.Model):
    """One model people can pick. Seeded by a data migration, editable in the admin.

    `parameters` says which parameters the model accepts and their allowed values, e.g.
    {"prompt": {"type": "text", "required": true, "max_length": 2000},
     "aspect_ratio": {"type": "choice", "choices": ["1:1", "16:9"], "default": "1:1"},
     "seed": {"type": "int", "min": 0, "max": 2147483647},
     "strength": {"type": "float", "min": 0, "max": 1, "default": 0.6},
     "image": {"type": "image", "required": true}}
    `input_map` maps our parameter names to the provider's input names, and `fixed_input`
    holds provider inputs we always send.
    """

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    provider_model = models.CharField(max_length=200, help_text="e.g. black-forest-labs/flux-schnell")
    provider_version = models.CharField(max_length=100, blank=True, help_text="Version id, for community models.")
    credit_cost = models.PositiveIntegerField()
    parameters = models.JSONField(default=dict, blank=True)
    input_map = models.JSONField(default=dict, blank=True)
    fixed_input = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    pro_only = models.BooleanField(default=False, help_text="Only people with an active Pro subscription may use it.")
    order = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "order", "title"]
        verbose_name = "catalog model"
        verbose_name_plural = "catalog models"

    def __str__(self) -> str:
        return f"{self.title} ({self.get_kind_display()})"

    @property
    def is_local(self) -> bool:
        return self.provider == Provider.LOCAL


class Source(models.TextChoices):
    """Where a generation was asked for. Jobs from an assistant (a GPT Action or an MCP client)
    keep their prompt and parameters only ASSISTANT_PROMPT_RETENTION_DAYS (privacy retention)."""

    WEB = "web", "Web"
    API = "api", "API"
    GPT_ACTION = "gpt_action", "ChatGPT (GPT Action)"
    MCP = "mcp", "Assistant (MCP)"


ASSISTANT_SOURCES = (Source.GPT_ACTION, Source.MCP)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)


class Generation(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations")
    model = models.ForeignKey(CatalogEntry, on_delete=models.PROTECT, related_name="generations")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    prompt = models.TextField(blank=True)
    negative_prompt = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    provider_prediction_id = models.CharField(max_length=100, blank=True, db_index=True)
    error_message = models.CharField(max_length=300, blank=True, help_text="Shown to the person.")
    error_detail = models.TextField(blank=True, help_text="For staff only.")
    cost = models.PositiveIntegerField()
    attempts = models.PositiveIntegerField(default=0)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    # Studio: starred in the gallery; the seed actually sent (Atelier picks one when the person
    # gives none, so a remix can reproduce it); the provider's model version that ran.
    favorite = models.BooleanField(default=False)
    # Set when the person asked to delete it: the gallery stops showing it at once; a task removes
    # its files, then the row.
    deleting_at = models.DateTimeField(null=True, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    provider_version = models.CharField(max_length=100, blank=True)
    # Assistants' door (issue 12): where it was asked for, and when its prompt and parameters were
    # blanked by the assistant retention purge (the media stays).
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.WEB)
    prompt_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-queued_at"]),
            # Gallery keyset pagination: WHERE owner = ? AND (queued_at, id) < (?, ?) ORDER BY both DESC.
            models.Index(fields=["owner", "-queued_at", "-id"], name="generation_gallery_cursor"),
            # The favourites view: a few % of a history, read in gallery order without a sort.
            models.Index(
                fields=["owner", "-queued_at", "-id"], condition=Q(favorite=True), name="generation_gallery_favorites"
            ),
            # The assistant-prompt purge (privacy retention): only assistant jobs not purged yet, oldest
            # first, without walking every web job and every row already done.
            models.Index(
                fields=["queued_at", "id"],
                condition=Q(source__in=["gpt_action", "mcp"], prompt_purged_at__isnull=True),
                name="generation_assistant_purge",
            ),
        ]
        # One retry per failed job (migration 0004 made it with SQL; declared so table rebuilds keep it).
        constraints = [models.UniqueConstraint(fields=["retry_of"], name="generation_retry_of_once")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.uuid} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def reservation_reference(self) -> str:
        return f"generation:{self.uuid}"

    @property
    def storage_prefix(self) -> str:
        return f"users/{self.owner.public_id}/generations/{self.uuid}"

    @property
    def params_display(self) -> list[tuple[str, object]]:
        """Parameters as (label, value) for the page, e.g. ("Aspect ratio", "16:9")."""
        return [(name.replace("_", " ").capitalize(), value) for name, value in (self.params or {}).items()]

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at and self.queued_at:
            return (self.finished_at - self.queued_at).total_seconds()
        return None


class AssetRole(models.TextChoices):
    INPUT = "input", "Input"
    OUTPUT = "output", "Output"
    THUMBNAIL = "thumbnail", "Thumbnail"
    POSTER = "poster", "Poster image (3D)"


class Asset(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="assets")
    role = models.CharField(max_length=16, choices=AssetRole.choices)
    index = models.PositiveSmallIntegerField(default=0)
    storage_key = models.CharField(max_length=500, unique=True)
    mime_type = models.CharField(max_length=100)
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["role", "index"]
        constraints = [
            models.UniqueConstraint(fields=["generation", "role", "index"], name="asset_unique_role_index"),
            models.CheckConstraint(condition=Q(bytes__gte=0), name="asset_bytes_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.storage_key}"

    @property
    def is_model_3d(self) -> bool:
        return self.mime_type == "model/gltf-binary"

    @property
    def filename(self) -> str:
        return self.storage_key.rsplit("/", 1)[-1]


class ProviderWebhook(models.Model):
    """Each provider webhook delivery we accepted, by its id, so a redelivery is a no-op."""

    provider = models.CharField(max_length=20, choices=Provider.choices)
    webhook_id = models.CharField(max_length=200)
    prediction_id = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "webhook_id"], name="webhook_unique_delivery")]

    def __str__(self) -> str:
        return f"{self.provider} webhook {self.webhook_id}"


class PendingUpload(models.Model):
    """A cleaned picture someone uploaded on the create page whose form was refused (a missing
    prompt, too few credits): kept so they need not pick the file again ("using photo.png —
    change"). Only its owner can use it; a submit copies it into the generation's own input, and
    rows older than PENDING_UPLOAD_MAX_AGE are swept with their objects."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pending_uploads")
    filename = models.CharField(max_length=200, help_text="The name the file had on the person's device.")
    storage_key = models.CharField(max_length=500, unique=True)
    mime_type = models.CharField(max_length=100)
    bytes = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"pending upload {self.filename} ({self.owner_id})"
