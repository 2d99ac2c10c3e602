"""The first privacy policy version: published, effective from its date, its text read from
policy_2026-11-01.md beside this file (the text is data from then on: staff publish new versions
in the admin). Periods in the text are written as {PRIVACY_...} names and filled in from settings
when the page is shown, so the policy states the periods Atelier runs with."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.db import migrations

TEXT = Path(__file__).with_name("policy_2026-11-01.md")


def seed(apps, schema_editor) -> None:
    PolicyVersion = apps.get_model("privacy", "PolicyVersion")
    version = settings.PRIVACY_POLICY_VERSION
    if PolicyVersion.objects.filter(version=version).exists():
        return
    try:
        effective = dt.datetime.fromisoformat(version).replace(tzinfo=dt.UTC)
    except ValueError:
        effective = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    PolicyVersion.objects.create(
        version=version,
        title="Privacy policy",
        body=TEXT.read_text(encoding="utf-8"),
        summary="The first version of Atelier's privacy policy.",
        material=False,
        effective_at=effective,
        published_at=effective,
        created_at=effective,
    )


class Migration(migrations.Migration):
    dependencies = [("privacy", "0002_policy_notice")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
