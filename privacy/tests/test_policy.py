"""Policy versions: the page (current + history), publishing in the admin, the notice and
re-acceptance before generating, acceptances per version, and the batched email about a
material change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import services as accounts_services
from billing import services as billing
from billing.models import LedgerReason
from generation.models import Generation
from privacy.models import ActivityEvent, ActivityKind, PolicyAcceptance, PolicyNotice, PolicyVersion
from privacy.policy import current_policy, current_policy_version
from privacy.services import policy as policy_service
from privacy.tasks.policy import notify_policy_change
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def draft(version="2026-12-01", *, material=False, days_ago=0, summary="We now keep IP addresses for 14 days."):
    return PolicyVersion.objects.create(
        version=version,
        body=f"## What changed\n\nVersion {version}. Contact {{PRIVACY_CONTACT_EMAIL}}.",
        summary=summary,
        material=material,
        effective_at=timezone.now() - timedelta(days=days_ago),
    )


def publish(policy, capture):
    with capture(execute=True):
        assert policy_service.policy_publish(policy=policy)
    policy.refresh_from_db()
    return policy


def fund(user, amount=5):
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"p:{user.pk}")


def create(client, capture):
    with capture(execute=True):
        return client.post("/create/?tab=image", {"model": "local-canvas", "prompt": "a lighthouse"}, follow=True)


# --- the page ----------------------------------------------------------------------------------


def test_seeded_policy_is_current_and_states_the_configured_periods(client, settings):
    settings.PRIVACY_RETENTION_IP_DAYS = 21
    page = client.get("/privacy/policy/").content.decode()
    # The first version (settings.PRIVACY_POLICY_VERSION) was followed by 2026-11-25 (assistants).
    assert current_policy().version == "2026-11-25"
    assert "<h2" in page and "Replicate" in page and "Stripe" in page and "Standard Contractual Clauses" in page
    assert "removed after 21 days" in page  # {PRIVACY_RETENTION_IP_DAYS} filled in from settings
    assert settings.PRIVACY_CONTACT_EMAIL in page
    assert "{PRIVACY_" not in page
    assert "under 13" in page


def test_page_lists_published_versions_with_links_and_hides_drafts(client, django_capture_on_commit_callbacks):
    publish(draft("2026-12-01"), django_capture_on_commit_callbacks)
    draft("2027-01-01")  # not published
    page = client.get("/privacy/policy/").content.decode()
    assert "Version 2026-12-01" in page
    assert 'href="/privacy/policy/2026-12-01/"' in page
    assert "/privacy/policy/2027-01-01/" not in page
    assert "We now keep IP addresses for 14 days." in page
    older = client.get("/privacy/policy/2026-11-01/").content.decode()
    assert "an earlier version" in older
    assert client.get("/privacy/policy/2027-01-01/").status_code == 404


def test_raw_html_and_script_links_in_the_text_are_not_passed_through(client, django_capture_on_commit_callbacks):
    policy = draft()
    policy.body = "<script>alert(1)</script>\n\n[click](javascript:alert(1)) and [mail](mailto:a@b.c)"
    policy.save()
    publish(policy, django_capture_on_commit_callbacks)
    page = client.get("/privacy/policy/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert "javascript:" not in page
    assert 'href="mailto:a@b.c"' in page


def test_a_version_dated_in_the_future_is_not_current_yet(django_capture_on_commit_callbacks):
    later = draft("2027-01-01", days_ago=-3)
    publish(later, django_capture_on_commit_callbacks)
    assert current_policy_version() != "2027-01-01"


# --- re-acceptance -----------------------------------------------------------------------------


def test_new_version_shows_notice_refuses_generation_until_accepted(alice, django_capture_on_commit_callbacks):
    fund(alice)
    client = Client()
    client.force_login(alice)
    publish(draft("2026-12-01", material=True), django_capture_on_commit_callbacks)

    page = client.get("/gallery/").content.decode()
    assert "Our privacy policy changed" in page and "/privacy/policy/accept/" in page

    refused = create(client, django_capture_on_commit_callbacks)
    assert "Our privacy policy has changed" in refused.content.decode()
    assert not Generation.objects.filter(owner=alice).exists()

    accept_page = client.get("/privacy/policy/accept/?next=/create/").content.decode()
    assert "We now keep IP addresses for 14 days." in accept_page
    assert "Our privacy policy changed on" not in accept_page  # no notice on the accept page itself
    response = client.post("/privacy/policy/accept/", {"version": "2026-12-01", "next": "/create/"})
    assert response.status_code == 302 and response["Location"] == "/create/"

    assert PolicyAcceptance.objects.filter(user=alice, policy__version="2026-12-01").exists()
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.POLICY_ACCEPTED, detail__version="2026-12-01")
    assert "Our privacy policy changed" not in client.get("/gallery/").content.decode()
    done = create(client, django_capture_on_commit_callbacks)
    assert done.request["PATH_INFO"].startswith("/g/")
    assert Generation.objects.filter(owner=alice).count() == 1


def test_a_version_that_is_not_material_is_current_but_stops_nobody(alice, django_capture_on_commit_callbacks):
    """Only a material change asks people to accept again (PolicyVersion.material's promise): after
    a clarification, an acceptance of any version since the last material one still counts."""
    fund(alice)
    client = Client()
    client.force_login(alice)
    accepted_before = alice.policy_version
    publish(draft("2026-12-01"), django_capture_on_commit_callbacks)
    assert current_policy().version == "2026-12-01"

    page = client.get("/gallery/").content.decode()
    assert "Our privacy policy changed" not in page
    create(client, django_capture_on_commit_callbacks)
    assert Generation.objects.filter(owner=alice).count() == 1
    alice.refresh_from_db()
    assert alice.policy_version == accepted_before and alice.has_accepted_terms

    # A material one after it: now both earlier acceptances stop counting.
    publish(draft("2026-12-02", material=True), django_capture_on_commit_callbacks)
    alice.refresh_from_db()
    assert not alice.has_accepted_terms
    assert "Our privacy policy changed" in client.get("/gallery/").content.decode()


def test_accepting_a_version_that_is_no_longer_current_shows_the_newer_one(alice, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(alice)
    publish(draft("2026-12-01", material=True), django_capture_on_commit_callbacks)
    response = client.post("/privacy/policy/accept/", {"version": "2026-11-01"}, follow=True)
    assert "changed again while you were reading" in response.content.decode()
    assert not PolicyAcceptance.objects.filter(user=alice, policy__version="2026-12-01").exists()


def test_people_who_never_passed_the_gate_still_go_to_the_age_gate(client):
    user = UserFactory(age_confirmed_at=None, policy_accepted_at=None, policy_version="")
    client.force_login(user)
    assert client.get("/gallery/")["Location"].startswith("/account/complete/")


def test_sign_up_acceptance_records_the_current_version(db):
    user = UserFactory(policy_version="", accepted=False)
    accounts_services.user_accept_terms(user=user)
    assert user.policy_version == current_policy_version()
    assert list(PolicyAcceptance.objects.filter(user=user).values_list("policy__version", flat=True)) == [
        user.policy_version
    ]
    assert ActivityEvent.objects.filter(user=user, kind=ActivityKind.POLICY_ACCEPTED).count() == 1
    accounts_services.user_accept_terms(user=user)  # again: still one acceptance, one event
    assert PolicyAcceptance.objects.filter(user=user).count() == 1
    assert ActivityEvent.objects.filter(user=user, kind=ActivityKind.POLICY_ACCEPTED).count() == 1


# --- the email about a material change ---------------------------------------------------------


def test_material_change_emails_everyone_once_in_chunks(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(policy_service, "NOTIFY_CHUNK", 2)
    people = [UserFactory() for _ in range(5)]
    people[0].paused_at = timezone.now()  # paused people are told too (legally needed)
    people[0].save(update_fields=["paused_at"])
    UserFactory(is_active=False)  # a deactivated account is not
    chunks = []
    original = policy_service.policy_notify_chunk
    monkeypatch.setattr(
        policy_service, "policy_notify_chunk", lambda **kw: chunks.append(kw["user_ids"]) or original(**kw)
    )
    policy = publish(draft("2026-12-01", material=True), django_capture_on_commit_callbacks)

    assert [len(c) for c in chunks] == [2, 2, 1]
    assert sorted(m.to[0] for m in mail.outbox) == sorted(p.email for p in people)
    message = mail.outbox[0]
    assert "privacy policy" in message.subject
    assert "We now keep IP addresses for 14 days." in message.body
    assert "/privacy/policy/2026-12-01/" in message.body
    assert PolicyNotice.objects.filter(policy=policy).count() == 5

    notify_policy_change.delay(policy.pk)  # a re-run (or a redelivered task) sends nothing new
    assert len(mail.outbox) == 5


def test_a_change_that_is_not_material_sends_no_email(alice, django_capture_on_commit_callbacks):
    publish(draft("2026-12-01", material=False), django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_material_change_needs_a_summary(django_capture_on_commit_callbacks):
    with pytest.raises(policy_service.PolicyError):
        policy_service.policy_publish(policy=draft(material=True, summary=""))


# --- the admin ---------------------------------------------------------------------------------


def test_staff_publish_in_the_admin_and_published_versions_are_read_only(client, django_capture_on_commit_callbacks):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    admin_client = client
    policy = draft("2026-12-01")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/privacy/policyversion/",
            {"action": "publish", "_selected_action": [policy.pk]},
            follow=True,
        )
    assert "Published 2026-12-01" in response.content.decode()
    policy.refresh_from_db()
    assert policy.published_at is not None
    assert current_policy_version() == "2026-12-01"  # the cache was dropped on publish
    model_admin = site._registry[PolicyVersion]
    request = response.wsgi_request
    assert "body" in model_admin.get_readonly_fields(request, policy)
    assert not model_admin.has_delete_permission(request, policy)
    admin_client.post(f"/admin/privacy/policyversion/{policy.pk}/change/", {"body": "changed"})
    policy.refresh_from_db()
    assert policy.body != "changed"


def test_the_seed_records_acceptances_of_people_who_accepted_the_first_version_before(settings):
    import importlib

    from django.apps import apps

    earlier = UserFactory(policy_version=settings.PRIVACY_POLICY_VERSION, accepted=False)
    never = UserFactory(policy_version="", accepted=False)
    PolicyNotice.objects.all().delete()
    PolicyAcceptance.objects.all().delete()
    PolicyVersion.objects.all().delete()
    importlib.import_module("privacy.migrations.0003_seed_policy").seed(apps, None)
    assert PolicyAcceptance.objects.get(user=earlier).policy.version == settings.PRIVACY_POLICY_VERSION
    assert not PolicyAcceptance.objects.filter(user=never).exists()


def test_the_accept_page_is_no_way_around_the_age_gate(client):
    user = UserFactory(age_confirmed_at=None, policy_accepted_at=None, policy_version="", accepted=False)
    client.force_login(user)
    response = client.post("/privacy/policy/accept/", {"version": current_policy_version()})
    assert response["Location"].startswith("/account/complete/")
    user.refresh_from_db()
    assert user.age_confirmed_at is None and not PolicyAcceptance.objects.filter(user=user).exists()
    with pytest.raises(policy_service.PolicyError):
        policy_service.policy_accept(user=user, version=current_policy_version())


def test_each_process_keeps_the_policy_state_a_second_and_publishing_here_drops_it(django_capture_on_commit_callbacks):
    """Every submit asks whether the person's acceptance counts; the answer is kept in the process
    for a second (a cache round trip is ~0.2 ms). A version published by another process shows
    within that second; one published here, at once."""
    from django.core.cache import cache

    from privacy import policy

    before = current_policy().version
    other = draft("2026-12-03", material=True)
    PolicyVersion.objects.filter(pk=other.pk).update(published_at=timezone.now())  # another process
    cache.delete(policy.CACHE_KEY)
    assert current_policy().version == before  # still this process's copy
    policy._local = policy._NOTHING_KEPT  # a second later
    assert current_policy().version == "2026-12-03"

    publish(draft("2026-12-04", material=True), django_capture_on_commit_callbacks)  # here: at once
    assert current_policy().version == "2026-12-04"
