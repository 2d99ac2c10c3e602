"""/mcp: the MCP server's one endpoint (streamable HTTP)."""

from __future__ import annotations

urlpatterns: list = []
