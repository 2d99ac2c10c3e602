"""Marketing email: only to people who opted in and are not paused, each with RFC 8058 one-click
unsubscribe headers; the link works without signing in, and a bent token is refused."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from privacy.mail import marketing_send, unsubscribe_token
from privacy.models import ConsentEvent, ConsentKind, ConsentMethod
from privacy.services.consents import consent_granted, consent_set
from privacy.services.restriction import account_pause
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def opt_in(user) -> None:
    consent_set(user=user, kind="marketing", granted=True, method="privacy_centre")


def test_product_update_goes_only_to_people_who_opted_in_and_are_not_paused(alice, bob, settings, tmp_path):
    settings.SITE_URL = "https://atelier.example"
    carol = UserFactory(email="carol@example.com")
    dave = UserFactory(email="dave@example.com")
    opt_in(alice)
    opt_in(carol)
    account_pause(user=carol)
    opt_in(dave)
    consent_set(user=dave, kind="marketing", granted=False, method="privacy_centre")  # changed his mind

    news = tmp_path / "news.txt"
    news.write_text("Turn any photo into a 3D model you can spin.")
    call_command("send_product_update", "--subject", "New: 3D from any photo", "--body-file", str(news))

    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    message = mail.outbox[0]
    assert message.subject == "New: 3D from any photo"
    unsubscribe = message.extra_headers["List-Unsubscribe"]
    link = re.match(r"<(https://atelier\.example/privacy/unsubscribe/[^>]+/)>, <mailto:[^>]+>$", unsubscribe)
    assert link, unsubscribe
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.group(1) in message.body  # the same link is in the text for people
    assert "Turn any photo into a 3D model you can spin." in message.body
    html = message.alternatives[0][0]
    assert link.group(1) in html
    # The headers survive into the MIME message a mail server receives.
    raw = message.message()
    assert raw["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert bob.email not in [m.to[0] for m in mail.outbox]


def test_dry_run_counts_without_sending(alice, capsys):
    opt_in(alice)
    call_command("send_product_update", "--subject", "Hello", "--dry-run")
    assert "1 people would get this email" in capsys.readouterr().out
    assert mail.outbox == []


def one_click_path(user) -> str:
    return f"/privacy/unsubscribe/{unsubscribe_token(user=user)}/"


def test_one_click_post_unsubscribes_without_session_or_csrf(alice):
    opt_in(alice)
    mail_provider = Client(enforce_csrf_checks=True)  # no cookies, no CSRF token: what Gmail sends
    response = mail_provider.post(
        one_click_path(alice), data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert not consent_granted(user=alice, kind=ConsentKind.MARKETING)
    event = ConsentEvent.objects.filter(user=alice).first()
    assert (event.kind, event.granted, event.method) == ("marketing", False, ConsentMethod.UNSUBSCRIBE_LINK)
    # Nobody gets marketing email any more.
    marketing_send(subject="More news", template="product_update")
    assert mail.outbox == []


def test_opening_the_link_only_asks_and_the_button_confirms(alice):
    opt_in(alice)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(one_click_path(alice))
    assert page.status_code == 200
    assert b"Unsubscribe from product emails" in page.content
    assert consent_granted(user=alice, kind=ConsentKind.MARKETING)  # a GET (link scanner) changes nothing
    done = browser.post(one_click_path(alice))  # the page's button: a plain form post
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    assert not consent_granted(user=alice, kind=ConsentKind.MARKETING)


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_token_is_refused(alice, method):
    opt_in(alice)
    token = unsubscribe_token(user=alice)
    bent = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    response = getattr(Client(), method)(f"/privacy/unsubscribe/{bent}/")
    assert response.status_code == 400
    assert b"This unsubscribe link is not valid" in response.content
    assert consent_granted(user=alice, kind=ConsentKind.MARKETING)


def test_a_token_signed_for_something_else_is_refused(alice):
    from django.core import signing

    opt_in(alice)
    other = signing.dumps({"u": str(alice.public_id), "k": "marketing"}, salt="another.salt")
    assert Client().post(f"/privacy/unsubscribe/{other}/").status_code == 400
    wrong_kind = signing.dumps({"u": str(alice.public_id), "k": "training"}, salt="privacy.unsubscribe")
    assert Client().post(f"/privacy/unsubscribe/{wrong_kind}/").status_code == 400
    assert consent_granted(user=alice, kind=ConsentKind.MARKETING)


def test_other_views_keep_csrf_protection(alice):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post("/privacy/choices/pause/").status_code == 403
    assert strict.post("/privacy/cookies/choice/", {"choice": "analytics"}).status_code == 403
