"""Create the confidential OAuth client a ChatGPT GPT Action signs people in with."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from atelier_oauth import services


class Command(BaseCommand):
    help = (
        "Create a confidential OAuth client (authorization code + PKCE) for a GPT Action. Give the "
        "callback URL the GPT editor shows (https://chat.openai.com/aip/<g-id>/oauth/callback); the "
        "chatgpt.com twin is registered too. Prints the client id and secret once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--redirect-uri", required=True, help="ChatGPT's OAuth callback URL for the GPT.")
        parser.add_argument("--name", default="ChatGPT", help="Shown on the consent screen (default ChatGPT).")

    def handle(self, *args, redirect_uri: str, name: str, **options):
        try:
            application, secret = services.gpt_action_client_create(redirect_uri=redirect_uri, name=name)
        except (services.RedirectUriRefused, ValidationError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Client ID:     {application.client_id}")
        self.stdout.write(f"Client secret: {secret}")
        self.stdout.write("Redirect URIs: " + ", ".join(application.redirect_uris.split()))
        self.stdout.write(
            "Copy the secret now: Atelier keeps only a hash of it. In the GPT editor choose OAuth, "
            "token exchange method 'Default (POST request)', scope 'read generate'."
        )
