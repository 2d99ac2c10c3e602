"""Marketing and product-update email: only to people whose marketing consent is on and whose
account is not paused, each with a one-click unsubscribe (RFC 8058).

Every message carries

    List-Unsubscribe: <https://<site>/privacy/unsubscribe/<token>/>, <mailto:<privacy contact>?subject=...>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

The token is signed (django.core.signing, its own salt) and names the person's public id and the
consent kind, so the link works without signing in and cannot be bent to another person or
another kind. It does not expire: an unsubscribe link in an old email must still work. The
mailto address is the privacy contact; staff turn such requests into a consent change in the
admin (method "staff").
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.urls import reverse

from privacy.models import ConsentKind
from privacy.services.consents import users_with_consent

logger = logging.getLogger(__name__)

_UNSUBSCRIBE_SALT = "privacy.unsubscribe"


def unsubscribe_token(*, user, kind: str = ConsentKind.MARKETING) -> str:
    return signing.dumps({"u": str(user.public_id), "k": str(kind)}, salt=_UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_token_read(token: str) -> tuple[str, str]:
    """(public id, consent kind) from a token; raises signing.BadSignature if it was not ours."""
    data = signing.loads(token, salt=_UNSUBSCRIBE_SALT)
    if not isinstance(data, dict) or data.get("k") != ConsentKind.MARKETING or not data.get("u"):
        raise signing.BadSignature("not an unsubscribe token")
    return data["u"], data["k"]


def unsubscribe_url(*, user) -> str:
    return settings.SITE_URL + reverse("privacy:unsubscribe", kwargs={"token": unsubscribe_token(user=user)})


def marketing_recipients():
    """People who may get marketing email right now: consent on, account active and not paused."""
    return users_with_consent(kind=ConsentKind.MARKETING).filter(paused_at__isnull=True).order_by("pk")


def marketing_message(*, user, subject: str, template: str, context: dict | None = None) -> EmailMultiAlternatives:
    """One marketing email for one person, from templates/privacy/email/marketing_<template>.txt
    (and .html when it exists), with the RFC 8058 unsubscribe headers."""
    link = unsubscribe_url(user=user)
    ctx = {"user": user, "unsubscribe_url": link, "site_url": settings.SITE_URL, **(context or {})}
    body = render_to_string(f"privacy/email/marketing_{template}.txt", ctx)
    mailto = f"mailto:{settings.PRIVACY_CONTACT_EMAIL}?subject={quote('unsubscribe ' + str(user.public_id))}"
    message = EmailMultiAlternatives(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        headers={
            "List-Unsubscribe": f"<{link}>, <{mailto}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    with contextlib.suppress(TemplateDoesNotExist):  # the HTML part is optional
        message.attach_alternative(render_to_string(f"privacy/email/marketing_{template}.html", ctx), "text/html")
    return message


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0


def marketing_send(*, subject: str, template: str, context: dict | None = None, batch: int = 200) -> SendReport:
    """Send one marketing email to everyone who may get it. The recipient list is read in batches
    as it goes, so a consent turned off (or an account paused) during a long send is honoured for
    everyone not yet reached."""
    report = SendReport()
    last_pk = 0
    with get_connection() as connection:
        while True:
            people = list(marketing_recipients().filter(pk__gt=last_pk)[:batch])
            if not people:
                break
            for user in people:
                last_pk = user.pk
                message = marketing_message(user=user, subject=subject, template=template, context=context)
                message.connection = connection
                try:
                    message.send()
                except OSError:
                    logger.exception("marketing email to user %s failed", user.pk)
                    report.failed += 1
                else:
                    report.sent += 1
    return report
