"""The staff training-dataset export: the one place Atelier would share people's uploads,
results and prompts for training. It includes only people whose training consent is on at
that moment (read again just before each person's files are copied) and whose account is not
paused; everyone else is left out, whatever they agreed to before.

The dataset carries no names, emails or account ids: each row names the generation by a
random id made for this export, the model, the prompt and parameters, and the files.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files.storage import default_storage

from privacy.models import ConsentKind
from privacy.services.consents import consent_granted, users_with_consent

# What a training dataset takes from a generation: what went in and what came out.
DATASET_ROLES = ("input", "output")


@dataclass
class DatasetReport:
    people: int = 0
    generations: int = 0
    files: int = 0
    bytes: int = 0
    skipped_people: int = 0  # consent turned off (or account paused) while the export ran
    missing_files: list[str] = field(default_factory=list)


def training_dataset_export(*, out_dir: Path) -> DatasetReport:
    """Write `manifest.jsonl` and `files/` under `out_dir` (created; must be empty or new)."""
    from generation.models import Generation, Status

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    (out_dir / "files").mkdir()
    report = DatasetReport()
    people = users_with_consent(kind=ConsentKind.TRAINING).filter(paused_at__isnull=True).order_by("pk")
    with (out_dir / "manifest.jsonl").open("w", encoding="utf-8") as manifest:
        for person in people.iterator():
            person.refresh_from_db(fields=["paused_at", "is_active"])
            # Re-read now: a pause or an erasure (which deactivates at once) may have come since.
            if person.is_paused or not person.is_active or not consent_granted(user=person, kind=ConsentKind.TRAINING):
                report.skipped_people += 1
                continue
            generations = (
                Generation.objects.filter(owner=person, status=Status.SUCCEEDED, deleting_at__isnull=True)
                .select_related("model")
                .prefetch_related("assets")
                .order_by("pk")
            )
            counted = False
            for generation in generations:
                row_id = uuid.uuid4().hex
                files = []
                for asset in generation.assets.all():
                    if asset.role not in DATASET_ROLES:
                        continue
                    name = f"{row_id}/{asset.role}-{len(files)}{Path(asset.storage_key).suffix}"
                    if not _copy(asset.storage_key, out_dir / "files" / name):
                        report.missing_files.append(asset.storage_key)
                        continue
                    files.append({"role": asset.role, "path": f"files/{name}", "mime_type": asset.mime_type})
                    report.files += 1
                    report.bytes += asset.bytes
                if not files:
                    continue
                record = {
                    "id": row_id,
                    "kind": generation.kind,
                    "model": generation.model.slug,
                    "prompt": generation.prompt,
                    "negative_prompt": generation.negative_prompt,
                    "params": generation.params,
                    "files": files,
                }
                manifest.write(json.dumps(record, ensure_ascii=False) + "\n")
                report.generations += 1
                counted = True
            report.people += counted
    return report


def _copy(key: str, target: Path) -> bool:
    """Stream one stored object to a local file; False when storage cannot give it."""
    from generation.storage import STORAGE_ERRORS

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with default_storage.open(key, "rb") as source, target.open("wb") as sink:
            for chunk in iter(lambda: source.read(1024 * 1024), b""):
                sink.write(chunk)
    except STORAGE_ERRORS:  # gone (deleted meanwhile) or unreadable: reported, not guessed
        target.unlink(missing_ok=True)
        return False
    return True
