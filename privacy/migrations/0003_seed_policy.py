"""The first privacy policy version: published, effective from its date, its text read from
policy_2026-11-01.md beside this file (the text is data from then on: staff publish new versions
in the admin). Periods in the text are written as {PRIVACY_...} names and filled in from settings
when the page is shown, so the policy states the periods Atelier runs with. Accounts that had
accepted this version already (the version string on the user row) get their PolicyAcceptance."""

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
    policy = PolicyVersion.objects.create(
        version=version,
        title="Privacy policy",
        body=TEXT.read_text(encoding="utf-8"),
        summary="The first version of Atelier's privacy policy.",
        material=False,
        effective_at=effective,
        published_at=effective,
        created_at=effective,
    )
    # People who accepted this version before acceptances were recorded per version.
    User = apps.get_model("accounts", "User")
    PolicyAcceptance = apps.get_model("privacy", "PolicyAcceptance")
    accepted = User.objects.filter(policy_version=version).values_list("pk", "policy_accepted_at")
    batch = []
    for user_id, accepted_at in accepted.iterator(chunk_size=2000):
        batch.append(PolicyAcceptance(user_id=user_id, policy=policy, accepted_at=accepted_at or effective))
        if len(batch) >= 2000:
            PolicyAcceptance.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    PolicyAcceptance.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("privacy", "0002_policy_notice"), ("accounts", "0002_user_paused_at")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
