from django.apps import AppConfig


class AtelierOauthConfig(AppConfig):
    """Atelier's OAuth 2.1 authorization server on django-oauth-toolkit: consent screen,
    RFC 8414/9728 metadata, RFC 7591 dynamic client registration, RFC 8707 resource binding."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "atelier_oauth"
    verbose_name = "OAuth"
