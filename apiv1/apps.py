from django.apps import AppConfig


class Apiv1Config(AppConfig):
    """The public JSON API v1 (django-ninja): generations, models, account; problem+json errors,
    idempotency, rate limits, Prefer: wait, and the signed 3D viewer page a chat can open."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apiv1"
    verbose_name = "API v1"
