"""The code samples on the /developers guide, written with the site's own addresses."""

from __future__ import annotations


def examples(*, site: str, mcp_url: str, webhook_timeout: str = "10 seconds") -> dict[str, str]:
    """`webhook_timeout`: how long a receiver has to answer, as a phrase ("10 seconds")."""
    api = f"{site}/api/v1"
    return {
        "create": f"""curl -sS {api}/generations \\
  -H "Authorization: Bearer $ATELIER_KEY" \\
  -H "Content-Type: application/json" \\
  -H "Prefer: wait=30" \\
  -H "Idempotency-Key: $(uuidgen)" \\
  -d '{{"model": "flux-schnell",
       "prompt": "a lighthouse at dawn, watercolor",
       "aspect_ratio": "16:9"}}'""",
        "create_answer": """HTTP/1.1 200 OK
Content-Type: application/json

{
  "id": "6f1c2a4e-8d1b-4a7e-9a55-2f0b8c3d1e77",
  "status": "succeeded",
  "kind": "text_to_image",
  "model": "flux-schnell",
  "cost": 1,
  "outputs": [
    {"url": "https://…signed link, valid minutes…",
     "mime_type": "image/webp", "width": 1344, "height": 768}
  ],
  "viewer_url": null,
  "web_url": "…/g/6f1c2a4e-…/"
}""",
        "poll": f"""curl -sS {api}/generations/$GENERATION_ID \\
  -H "Authorization: Bearer $ATELIER_KEY" """,
        "list": f"""curl -sS "{api}/generations?limit=20&status=succeeded" \\
  -H "Authorization: Bearer $ATELIER_KEY"
# next page: add &cursor=<next_cursor from the previous answer>""",
        "cancel": f"""curl -sS -X POST {api}/generations/$GENERATION_ID/cancel \\
  -H "Authorization: Bearer $ATELIER_KEY" """,
        "image_to_3d": f"""curl -sS {api}/generations \\
  -H "Authorization: Bearer $ATELIER_KEY" \\
  -H "Content-Type: application/json" \\
  -H "Prefer: wait=40" \\
  -H "Idempotency-Key: $(uuidgen)" \\
  -d '{{"model": "trellis", "image_url": "https://example.com/chair.png"}}'""",
        "problem": f"""HTTP/1.1 402 Payment Required
Content-Type: application/problem+json

{{
  "type": "{site}/developers/errors#insufficient_credits",
  "title": "Not enough credits",
  "status": 402,
  "detail": "This needs 4 credits and you have 1. Buy more credits or pick a cheaper model."
}}""",
        "claude_code": f"claude mcp add --transport http atelier {mcp_url}",
        "cursor": f"""{{
  "mcpServers": {{
    "atelier": {{ "url": "{mcp_url}" }}
  }}
}}""",
        "mcp_key": f"""{{
  "mcpServers": {{
    "atelier": {{
      "url": "{mcp_url}",
      "headers": {{ "Authorization": "Bearer atl_…" }}
    }}
  }}
}}""",
        "webhook_body": """POST /your/webhook/path HTTP/1.1
Content-Type: application/json
webhook-id: msg_2kTg6bXQ0hH1c8a1mU3vA7Yq
webhook-timestamp: 1764079200
webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=

{
  "type": "generation.succeeded",
  "timestamp": "2026-11-25T14:00:00+00:00",
  "data": {
    "id": "6f1c2a4e-8d1b-4a7e-9a55-2f0b8c3d1e77",
    "status": "succeeded",
    "kind": "text_to_image",
    "model": "flux-schnell",
    "cost": 1,
    "created_at": "2026-11-25T13:59:52+00:00",
    "finished_at": "2026-11-25T14:00:00+00:00",
    "error": null,
    "outputs": [
      {"url": "https://…signed link…", "mime_type": "image/webp", "width": 1344, "height": 768}
    ],
    "viewer_url": null
  }
}""",
        "verify_python": """# pip install standardwebhooks
import os

from standardwebhooks.webhooks import Webhook

wh = Webhook(os.environ["ATELIER_WEBHOOK_SECRET"])   # whsec_…

def receive(request):
    event = wh.verify(request.body, request.headers)  # raises if the signature or time is wrong
    if event["type"] == "generation.succeeded":
        save(event["data"]["id"], event["data"]["outputs"])
    return 204  # answer 2xx within """
        + webhook_timeout
        + """; do slow work afterwards""",
        "verify_node": """// npm install standardwebhooks
import { Webhook } from "standardwebhooks";

const wh = new Webhook(process.env.ATELIER_WEBHOOK_SECRET); // whsec_…
const event = wh.verify(rawBody, headers); // throws if the signature or time is wrong""",
    }
