from django.apps import AppConfig


class McpServerConfig(AppConfig):
    """The MCP server at /mcp (streamable HTTP, official `mcp` SDK) over the same engine as the API."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "mcpserver"
    verbose_name = "MCP server"
