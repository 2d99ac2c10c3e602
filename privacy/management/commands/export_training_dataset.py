"""Staff: write a training dataset of the people whose training consent is on right now.

    manage.py export_training_dataset --out /data/datasets/2026-11-25

See privacy/services/training.py for what is included and what is not.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from privacy.services.training import training_dataset_export


class Command(BaseCommand):
    help = "Export prompts and files of people whose training consent is on at this moment."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--out", required=True, help="A new or empty directory.")

    def handle(self, *args, out: str, **options) -> None:
        try:
            report = training_dataset_export(out_dir=Path(out))
        except FileExistsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{report.people} people, {report.generations} generations, {report.files} files ({report.bytes} bytes)"
        )
        if report.skipped_people:
            self.stdout.write(
                f"{report.skipped_people} left out: consent withdrawn or account paused during the export"
            )
        if report.missing_files:
            self.stderr.write(f"{len(report.missing_files)} files were missing from storage and left out")
        self.stdout.write(self.style.SUCCESS(f"Written to {out}"))
