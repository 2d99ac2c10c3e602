from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = "Create (or reset) the demo account, give it sample generations once, and print its credentials."

    def handle(self, *args, **options) -> None:
        email, password = settings.DEMO_USER_EMAIL, settings.DEMO_USER_PASSWORD
        user, created = services.demo_user_ensure(email=email, password=password)
        samples = services.demo_samples_ensure(user=user)
        verb = "Created" if created else "Reset"
        self.stdout.write(self.style.SUCCESS(f"{verb} demo account — email: {email}  password: {password}"))
        if samples:
            self.stdout.write(f"Made {samples} sample generations with the offline models for the demo account.")
