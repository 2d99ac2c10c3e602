"""/mcp: the MCP server's one endpoint (streamable HTTP)."""

from __future__ import annotations

from django.urls import path

from mcpserver import views

app_name = "mcpserver"

urlpatterns = [
    path("mcp", views.mcp_endpoint, name="endpoint"),
]
