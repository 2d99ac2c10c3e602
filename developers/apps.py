from django.apps import AppConfig


class DevelopersConfig(AppConfig):
    """/developers: the guide (GPT Action, MCP clients, curl), keys, connected OAuth apps and
    completion webhooks signed the Standard Webhooks way."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "developers"
    verbose_name = "Developers"

    def ready(self) -> None:
        from developers import receivers  # noqa: F401  (connects generation_finished)
