from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = "Create (or reset) the demo account and print its credentials."

    def handle(self, *args, **options) -> None:
        email, password = settings.DEMO_USER_EMAIL, settings.DEMO_USER_PASSWORD
        _, created = services.demo_user_ensure(email=email, password=password)
        verb = "Created" if created else "Reset"
        self.stdout.write(self.style.SUCCESS(f"{verb} demo account — email: {email}  password: {password}"))
