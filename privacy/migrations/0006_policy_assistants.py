"""Policy version 2026-11-25 (not material): what the chat path keeps and for how long, API keys,
connected apps and developer webhooks, and that pausing the account also refuses the API and
assistants. Its text is policy_2026-11-25.md beside this file; from then on it is data, like the
first version (0003).

Periods stay {NAME}s in the text; the policy page fills them in from settings
(privacy.services.policy.TEXT_SETTINGS, which knows ASSISTANT_PROMPT_RETENTION_DAYS and
DEVELOPER_WEBHOOK_LOG_DAYS), so the text follows the configuration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.db import migrations

VERSION = "2026-11-25"
TEXT = Path(__file__).with_name(f"policy_{VERSION}.md")
SUMMARY = (
    "What we keep when you use Atelier from ChatGPT, Claude or another assistant: prompts and settings "
    "sent from an assistant are removed after a set number of days unless you choose to keep them, the "
    "results stay. New sections on API keys, connected apps and webhooks. Pausing your account also "
    "refuses API keys and connected assistants."
)


def body() -> str:
    return TEXT.read_text(encoding="utf-8")


def publish(apps, schema_editor) -> None:
    PolicyVersion = apps.get_model("privacy", "PolicyVersion")
    if PolicyVersion.objects.filter(version=VERSION).exists():
        return
    effective = dt.datetime.fromisoformat(VERSION).replace(tzinfo=dt.UTC)
    now = max(dt.datetime.now(dt.UTC), effective)
    PolicyVersion.objects.create(
        version=VERSION,
        title="Privacy policy",
        body=body(),
        summary=SUMMARY,
        material=False,
        effective_at=effective,
        published_at=now,
        created_at=now,
    )


def unpublish(apps, schema_editor) -> None:
    apps.get_model("privacy", "PolicyVersion").objects.filter(version=VERSION, acceptances__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("privacy", "0005_privacysettings_keep_assistant_history")]

    operations = [migrations.RunPython(publish, unpublish)]
