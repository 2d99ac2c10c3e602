"""Staff: send a product-update (marketing) email to everyone whose marketing consent is on and
whose account is not paused, each with a one-click unsubscribe (privacy/mail.py).

    manage.py send_product_update --subject "New: 3D from any photo" --body-file news.txt
    manage.py send_product_update --subject "..." --template product_update --dry-run
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.template import TemplateDoesNotExist

from privacy.mail import marketing_recipients, marketing_send


class Command(BaseCommand):
    help = "Email a product update to people who opted in to marketing email (and are not paused)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--subject", required=True)
        parser.add_argument(
            "--template",
            default="product_update",
            help="templates/privacy/email/marketing_<template>.txt (and .html, optional).",
        )
        parser.add_argument("--body-file", help="Plain text put into the template as {{ body }}.")
        parser.add_argument("--dry-run", action="store_true", help="Only count who would get it.")

    def handle(self, *args, subject: str, template: str, body_file: str | None, dry_run: bool, **options) -> None:
        if dry_run:
            self.stdout.write(f"{marketing_recipients().count()} people would get this email.")
            return
        body = Path(body_file).read_text(encoding="utf-8") if body_file else ""
        try:
            report = marketing_send(subject=subject, template=template, context={"body": body})
        except TemplateDoesNotExist as exc:
            raise CommandError(f"No such email template: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Sent {report.sent}, failed {report.failed}."))
