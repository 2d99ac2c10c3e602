"""Delete my account: re-authentication and the typed confirmation, the immediate effects
(deactivated, every session ended, running jobs canceled), then the task: storage emptied under
users/<uuid>/ (checked on the S3 API server), the Stripe customer deleted (checked on localstripe),
every row gone — checked by scanning every table of the PostgreSQL database for the person's id,
public id and email — money records kept without the person, the receipt email; and a run killed
halfway that finishes when resumed, with the same counts."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
import stripe
from allauth.socialaccount.models import SocialAccount
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from PIL import Image

from accounts.models import User
from billing import services as billing
from billing.models import (
    CreditAdjustment,
    Customer,
    LedgerEntry,
    Payment,
    StripeEvent,
    Subscription,
    Wallet,
)
from billing.tests.webhooks import send
from generation import services as generation_services
from generation import storage
from generation.models import CatalogEntry, Generation, Kind, PendingUpload, Status
from privacy.models import (
    ActivityEvent,
    ActivityKind,
    Consent,
    ConsentEvent,
    DataExport,
    ErasureReceipt,
    ErasureStatus,
    PolicyAcceptance,
    PolicyVersion,
    PrivacySettings,
)
from privacy.services import erasure as erasure_services
from privacy.services.activity import activity_record
from privacy.tasks.erasure import resume_erasures
from tests.factories import PASSWORD, UserFactory
from tests.fakes import stripe_shapes as shapes

pytestmark = pytest.mark.django_db


# --- building a person with a bit of everything ---------------------------------------------------


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def submit(user, capture, *, slug="local-canvas", **values):
    """A real generation through the offline models: its files land in the bucket."""
    entry = CatalogEntry.objects.get(slug=slug)
    upload = (
        SimpleUploadedFile("photo.png", png(), content_type="image/png") if entry.kind != Kind.TEXT_TO_IMAGE else None
    )
    with capture(execute=True):
        generation = generation_services.generation_submit(
            user=user, spec=generation_services.GenerationSpec(model=entry, values=values, image_upload=upload)
        )
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_detail
    return generation


def bucket_keys(s3, prefix: str = "") -> list[str]:
    listing = s3["client"].list_objects_v2(Bucket=s3["bucket"], Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def reauthenticated(client: Client, user) -> Client:
    client.force_login(user)
    response = client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def buy_pack_and_subscribe(client, payments, stripe_sdk, capture) -> None:
    """A credit pack and a Pro subscription, paid on "Stripe", with their webhooks delivered."""
    client.post("/billing/checkout/pack/500/")
    paid = payments.complete_checkout(payments.sessions[-1]["id"])
    send(client, payments.event("checkout.session.completed", paid), capture)
    client.post("/billing/checkout/plan/pro/")
    session = payments.complete_checkout(payments.sessions[-1]["id"])
    subscription = stripe_sdk.v1.subscriptions.retrieve(session["subscription"])
    for event in (
        payments.event("customer.subscription.created", subscription),
        payments.event("checkout.session.completed", session),
        payments.event("invoice.paid", stripe_sdk.v1.invoices.retrieve(session["invoice"])),
    ):
        assert send(client, event, capture).status_code == 200


def fill_account(user, capture, *, staff=None) -> dict:
    """Generations with files, a kept upload, an export, consents, policy acceptance, activity,
    settings, a Google account, a staff note and the admin's log about the account."""
    billing.credits_grant_signup_bonus(user=user)  # its reference and key name the public id
    billing.credits_grant(user=user, amount=40, reason="admin_grant", idempotency_key=f"fund:{user.pk}")
    generations = [
        submit(user, capture, prompt=f"a secret lighthouse of {user.display_name}"),
        submit(user, capture, slug="local-restyle", prompt="a secret winter"),
    ]
    generation_services.pending_upload_keep(
        user=user, upload=SimpleUploadedFile("holiday.png", png(), content_type="image/png")
    )
    export = DataExport.objects.create(user=user, status="ready", storage_key=f"users/{user.public_id}/exports/x.zip")
    default_storage.save(export.storage_key, ContentFile(b"PK\x05\x06" + b"\0" * 18))
    policy = PolicyVersion.objects.order_by("pk").first() or PolicyVersion.objects.create(version="t", body="x")
    PolicyAcceptance.objects.get_or_create(user=user, policy=policy)
    Consent.objects.update_or_create(user=user, kind="training", defaults={"granted": True, "wording_version": "1"})
    ConsentEvent.objects.create(user=user, kind="training", granted=True, wording_version="1", method="privacy_centre")
    PrivacySettings.objects.update_or_create(user=user, defaults={"history_retention_days": 30})
    activity_record(user=user, kind=ActivityKind.SIGN_IN, device="Firefox on Linux")
    from accounts.services import api_key_create  # an API key (issue 12): revoked, then gone

    api_key_create(user=user, name=f"{user.email} script", scopes=["read", "generate"])
    SocialAccount.objects.create(
        user=user, provider="google", uid=f"google-{user.pk}", extra_data={"email": user.email}
    )
    if staff is not None:
        billing.credits_adjust(user=user, amount=5, reason=f"Goodwill for {user.email}, sorry", staff=staff)
        LogEntry.objects.create(
            user=staff,
            content_type=ContentType.objects.get_for_model(User),
            object_id=str(user.pk),
            object_repr=user.email,
            action_flag=CHANGE,
            change_message="[]",
        )
    return {"generations": generations, "export": export}


# --- the scan -------------------------------------------------------------------------------------------


def scan_database(user_pk: int, needles: list[str]) -> list[str]:
    """Every place in the public schema where the person still appears: a foreign key to the user
    table holding their id, any text, JSON or UUID column holding their public id or email, and
    any session whose data names them."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT cl.relname, a.attname
            FROM pg_constraint c
            JOIN pg_class cl ON cl.oid = c.conrelid
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
            WHERE c.contype = 'f' AND c.confrelid = 'accounts_user'::regclass
            """
        )
        for table, column in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" = %s', [user_pk])
            if cursor.fetchone()[0]:
                found.append(f"{table}.{column} = user id")
        cursor.execute("SELECT count(*) FROM accounts_user WHERE id = %s", [user_pk])
        if cursor.fetchone()[0]:
            found.append("accounts_user.id")
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public'
              AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'uuid')
            """
        )
        for table, column in cursor.fetchall():
            for needle in needles:
                cursor.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE %s', [f"%{needle}%"])
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column} contains {needle}")
    for session in Session.objects.all():
        if str(session.get_decoded().get("_auth_user_id")) == str(user_pk):
            found.append(f"django_session {session.session_key}")
    return found


# The explicit retention list of the scan: where the person may still be found after erasure.
# Money records are kept, but under the pseudonymous subject, so: nowhere.
ALLOWED_AFTER_ERASURE: list[str] = []


# --- the whole thing -----------------------------------------------------------------------------------


def test_erasure_deletes_everything_keeps_money_records_anonymized_and_sends_the_receipt(
    client, alice, bob, s3_storage, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    staff = UserFactory(email="support@atelier.local", is_staff=True, display_name="Support")
    reauthenticated(client, alice)
    buy_pack_and_subscribe(client, payments, stripe_sdk, capture)
    made = fill_account(alice, capture, staff=staff)
    bob_made = fill_account(bob, capture)
    laptop = Client()
    laptop.force_login(alice)  # a second device
    assert laptop.get("/privacy/").status_code == 200

    prefix = f"users/{alice.public_id}/"
    alice_keys = bucket_keys(s3_storage, prefix)
    bob_keys = bucket_keys(s3_storage, f"users/{bob.public_id}/")
    assert len(alice_keys) >= 6 and bob_keys  # inputs, outputs, thumbnails, the kept upload, the export
    alice_bytes = sum(default_storage.size(key) for key in alice_keys)
    customer_id = Customer.objects.get(user=alice).stripe_customer_id
    subscription_id = Subscription.objects.get(user=alice).stripe_subscription_id
    assert StripeEvent.objects.filter(payload__data__object__customer=customer_id).exists()
    wallet = Wallet.objects.get(user=alice)
    ledger_before = list(LedgerEntry.objects.filter(wallet=wallet).order_by("pk").values_list("pk", "amount"))
    payments_before = list(Payment.objects.filter(user=alice).order_by("pk").values_list("pk", "amount_cents"))
    assert len(payments_before) == 2 and len(ledger_before) >= 6
    bob_generations = set(Generation.objects.filter(owner=bob).values_list("pk", flat=True))
    mail.outbox.clear()

    page = client.get("/privacy/delete/")
    assert page.status_code == 200 and "Delete my account for good" in page.content.decode()
    with capture(execute=True):
        response = client.post("/privacy/delete/", {"confirmation": "  ALICE@example.com "})
    assert response.status_code == 302 and response["Location"] == "/privacy/delete/started/"

    # Signed out here and on the other device; the account is gone.
    assert client.get("/privacy/").status_code == 302
    assert laptop.get("/privacy/").status_code == 302
    assert not User.objects.filter(pk=alice.pk).exists()
    started = client.get(response["Location"]).content.decode()
    assert "Your account is being deleted" in started and "email receipt" in started

    receipt = ErasureReceipt.objects.get()
    assert receipt.status == ErasureStatus.DONE, receipt.last_error
    assert receipt.steps_done == list(erasure_services.STEPS)
    assert receipt.user is None and receipt.email == "" and receipt.receipt_sent_at

    # Nothing left in the bucket under the person's prefix; Bob's files untouched.
    assert bucket_keys(s3_storage, prefix) == []
    assert bucket_keys(s3_storage, f"users/{bob.public_id}/") == bob_keys

    # Stripe: the subscription was canceled at once and the customer is deleted.
    try:
        customer = stripe_sdk.v1.customers.retrieve(customer_id)
    except stripe.InvalidRequestError as exc:
        assert exc.http_status == 404
    else:
        assert getattr(customer, "deleted", False) is True
    assert stripe_sdk.v1.subscriptions.retrieve(subscription_id).status == "canceled"
    assert not StripeEvent.objects.filter(payload__data__object__customer=customer_id).exists()
    assert StripeEvent.objects.filter(payload__redacted="account erased").exists()

    # Money records kept, detached, under the subject.
    subject = receipt.subject
    wallet.refresh_from_db()
    assert wallet.user_id is None and wallet.subject == subject
    assert list(LedgerEntry.objects.filter(wallet=wallet).order_by("pk").values_list("pk", "amount")) == ledger_before
    assert LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"] == wallet.balance
    kept_payments = Payment.objects.filter(subject=subject).order_by("pk")
    assert list(kept_payments.values_list("pk", "amount_cents")) == payments_before
    assert all(p.user_id is None and p.receipt_url == "" for p in kept_payments)
    adjustment = CreditAdjustment.objects.get(subject=subject)
    assert adjustment.user_id is None and "alice" not in adjustment.reason.lower()
    assert LedgerEntry.objects.filter(wallet=wallet, reference=f"user:subject:{subject}").exists()
    assert not LedgerEntry.objects.filter(memo__icontains="secret").exists()

    # The scan: the person's id, public id and email are nowhere in the database.
    found = scan_database(alice.pk, [str(alice.public_id), alice.public_id.hex, alice.email])
    assert [f for f in found if f not in ALLOWED_AFTER_ERASURE] == []

    # Stripe tells us about the deletion afterwards (with the email in it): beat redacts it.
    # Stripe's whole Customer, as the event sends it (email, name, phone, address filled).
    deleted_customer = shapes.customer(id=customer_id, email=alice.email, name="Alice Example", deleted=True)
    send(client, payments.event("customer.deleted", deleted_customer), capture)
    assert scan_database(alice.pk, [alice.email, "Alice Example"]) == [
        "billing_stripeevent.payload contains alice@example.com",
        "billing_stripeevent.payload contains Alice Example",
    ]
    resume_erasures()
    assert scan_database(alice.pk, [alice.email, "Alice Example"]) == []

    # Bob is untouched.
    bob.refresh_from_db()
    assert bob.is_active and set(Generation.objects.filter(owner=bob).values_list("pk", flat=True)) == bob_generations
    assert DataExport.objects.filter(pk=bob_made["export"].pk).exists()
    assert PendingUpload.objects.filter(owner=bob).count() == 1
    assert Consent.objects.filter(user=bob).count() == ConsentEvent.objects.filter(user=bob).count() == 1
    assert Wallet.objects.get(user=bob).balance > 0 and SocialAccount.objects.filter(user=bob).exists()

    # The receipt email, to the address the person had.
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    body = mail.outbox[0].body
    assert mail.outbox[0].subject == "[Atelier] Your account has been deleted"
    counts = receipt.counts
    assert counts["files"] == len(alice_keys) and counts["bytes"] == alice_bytes
    assert counts["deleted"]["generations"] == 2 and counts["kept"]["payments"] == 2
    assert "Generations (prompts, settings, results): 2" in body
    assert f"Stored files: {len(alice_keys)} (" in body and "none is left" in body
    assert "Your customer record at Stripe (our payment processor), deleted, after canceling your subscription" in body
    assert "Replicate" in body and "one hour after it ends" in body
    assert f"Your payments (2) and credit movements ({len(ledger_before)}, of which 1 made by our support team)" in body
    assert "tax and accounting law" in body and "10 years" in body and "for 3 years." in body
    assert str(subject) in body
    assert "lighthouse" not in body and "alice" not in body.lower()
    assert made["generations"][0].uuid and not Generation.objects.filter(owner_id=alice.pk).exists()


def test_a_run_killed_halfway_finishes_when_resumed_with_the_same_counts(
    client, alice, s3_storage, django_capture_on_commit_callbacks, monkeypatch
):
    capture = django_capture_on_commit_callbacks
    fill_account(alice, capture)
    prefix = f"users/{alice.public_id}/"
    keys = bucket_keys(s3_storage, prefix)
    real_delete = storage.delete_keys
    calls = {"n": 0}

    def delete_some_then_die(batch):
        batch = list(batch)
        calls["n"] += 1
        if calls["n"] == 1:
            real_delete(batch[:1])  # a worker killed in the middle of deleting files
            raise RuntimeError("worker lost")
        return real_delete(batch)

    monkeypatch.setattr(storage, "delete_keys", delete_some_then_die)
    reauthenticated(client, alice)
    with capture(execute=True):
        client.post("/privacy/delete/", {"confirmation": "delete my account"})

    receipt = ErasureReceipt.objects.get()
    assert receipt.status == ErasureStatus.FAILED and "worker lost" in receipt.last_error
    assert receipt.steps_done == ["inventory", "jobs", "stripe"]
    left = bucket_keys(s3_storage, prefix)
    assert 0 < len(left) < len(keys)  # some files went, some are still there
    assert User.objects.filter(pk=alice.pk, is_active=False).exists() and not mail.outbox

    assert resume_erasures() == 1  # beat
    receipt.refresh_from_db()
    assert receipt.status == ErasureStatus.DONE and receipt.attempts == 2
    assert receipt.steps_done == list(erasure_services.STEPS)
    assert bucket_keys(s3_storage, prefix) == []
    assert receipt.counts["files"] == len(keys)
    assert receipt.counts["deleted"]["generations"] == 2 and receipt.counts["deleted"]["pending_uploads"] == 1
    assert not User.objects.filter(pk=alice.pk).exists()
    assert len(mail.outbox) == 1 and f"Stored files: {len(keys)} (" in mail.outbox[0].body

    assert resume_erasures() == 0  # nothing left to do; a second run changes nothing
    erasure_services.erasure_run(receipt_id=receipt.pk)
    receipt.refresh_from_db()
    assert len(mail.outbox) == 1 and receipt.attempts == 2


def test_a_failure_inside_the_row_step_leaves_nothing_half_done(
    client, alice, django_capture_on_commit_callbacks, monkeypatch
):
    capture = django_capture_on_commit_callbacks
    fill_account(alice, capture)
    real = erasure_services._detach_money_records
    calls = {"n": 0}

    def fail_once(user, subject):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real(user, subject)

    monkeypatch.setattr(erasure_services, "_detach_money_records", fail_once)
    reauthenticated(client, alice)
    with capture(execute=True):
        client.post("/privacy/delete/", {"confirmation": alice.email})
    receipt = ErasureReceipt.objects.get()
    assert receipt.status == ErasureStatus.FAILED and "rows" not in receipt.steps_done
    # The transaction rolled back: the rows the step deletes are all still there.
    assert Consent.objects.filter(user=alice).exists() and ActivityEvent.objects.filter(user=alice).exists()
    assert Wallet.objects.filter(user=alice).exists()

    resume_erasures()
    receipt.refresh_from_db()
    assert receipt.status == ErasureStatus.DONE
    assert not User.objects.filter(pk=alice.pk).exists() and Wallet.objects.get(subject=receipt.subject)


# --- the request: re-authentication, confirmation, what happens at once ----------------------------------


def test_the_delete_page_asks_for_the_password_first(client, alice):
    client.force_login(alice)
    response = client.get("/privacy/delete/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/reauthenticate/?next=%2Fprivacy%2Fdelete%2F"
    wrong = client.post("/accounts/reauthenticate/?next=/privacy/delete/", {"password": "not it at all"})
    assert wrong.status_code == 200
    right = client.post("/accounts/reauthenticate/?next=/privacy/delete/", {"password": PASSWORD})
    assert right.status_code == 302 and right["Location"] == "/privacy/delete/"
    assert "Type your email address" in html.unescape(client.get("/privacy/delete/").content.decode())


def test_a_wrong_confirmation_deletes_nothing(client, alice, django_capture_on_commit_callbacks):
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/privacy/delete/", {"confirmation": "bob@example.com"})
    assert response.status_code == 400
    assert "neither your email address nor" in response.content.decode()
    alice.refresh_from_db()
    assert alice.is_active and not ErasureReceipt.objects.exists()


def test_at_once_the_account_is_closed_every_session_ends_and_running_jobs_are_canceled(
    client, alice, django_capture_on_commit_callbacks
):
    billing.credits_grant(user=alice, amount=20, reason="admin_grant", idempotency_key="fund")
    entry = CatalogEntry.objects.get(slug="local-canvas")
    queued = generation_services.generation_submit(
        user=alice, spec=generation_services.GenerationSpec(model=entry, values={"prompt": "still running"})
    )  # its task never runs: it stays queued
    phone = Client()
    phone.force_login(alice)
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=False):  # the task does not run
        response = client.post("/privacy/delete/", {"confirmation": alice.email})
    assert response.status_code == 302

    alice.refresh_from_db()
    assert not alice.is_active and not alice.has_usable_password()
    queued.refresh_from_db()
    assert queued.status == Status.CANCELED
    assert Wallet.objects.get(user=alice).balance == 20  # refunded
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.ERASURE_REQUESTED).count() == 1
    receipt = ErasureReceipt.objects.get(user=alice)
    assert receipt.email == "alice@example.com" and receipt.status == ErasureStatus.RUNNING
    # Both devices are signed out, and signing in is refused.
    assert client.get("/privacy/").status_code == 302 and phone.get("/privacy/").status_code == 302
    fresh = Client()
    login = fresh.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert "_auth_user_id" not in fresh.session
    assert login.status_code in (200, 302) and fresh.get("/privacy/").status_code == 302


def test_a_google_only_account_confirms_with_a_fresh_google_sign_in(client, db, fake_google):
    person = UserFactory(email=fake_google.user.email, password=None)
    person.set_unusable_password()
    person.save(update_fields=["password"])
    SocialAccount.objects.create(user=person, provider="google", uid=fake_google.user.sub)
    client.force_login(person)  # signed in long ago, as far as this session knows
    page = client.get("/privacy/delete/")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert "sign in with Google again" in text and "Type your email address" not in text
    action = re.search(r'action="(/accounts/google/login/\?[^"]*action=reauthenticate[^"]*)"', text).group(1)

    # Off to "Google" (which asks the person to pick and confirm their account), and back.
    to_google = client.post(action)
    assert to_google.status_code == 302 and to_google["Location"].startswith(fake_google.url)
    assert "prompt=select_account+consent" in to_google["Location"]
    back = requests.get(to_google["Location"], allow_redirects=False, timeout=5)
    callback = urlsplit(back.headers["Location"])
    returned = client.get(f"{callback.path}?{callback.query}")
    assert returned.status_code == 302 and returned["Location"] == "/privacy/delete/"
    assert "Type your email address" in html.unescape(client.get("/privacy/delete/").content.decode())


def test_the_privacy_centre_has_the_danger_zone(client, alice):
    client.force_login(alice)
    text = client.get("/privacy/").content.decode()
    assert 'id="delete-account"' in text and 'href="/privacy/delete/"' in text
    assert "Delete my account" in text and "10 years" in text


def test_the_receipt_admin_is_read_only(client, db):
    admin_user = UserFactory(email="root@atelier.local", is_staff=True, is_superuser=True)
    receipt = ErasureReceipt.objects.create(email="", counts={"files": 3, "bytes": 10})
    client.force_login(admin_user)
    assert client.get("/admin/privacy/erasurereceipt/").status_code == 200
    detail = client.get(f"/admin/privacy/erasurereceipt/{receipt.pk}/change/")
    assert detail.status_code == 200 and "&quot;files&quot;: 3" in detail.content.decode()
    assert client.get("/admin/privacy/erasurereceipt/add/").status_code == 403
    assert client.get(f"/admin/privacy/erasurereceipt/{receipt.pk}/delete/").status_code == 403


@pytest.fixture
def replicate_env(settings, replicate_api, s3_storage):
    settings.REPLICATE_API_TOKEN = replicate_api.state.token
    settings.REPLICATE_BASE_URL = replicate_api.url
    settings.REPLICATE_WEBHOOK_SECRET = replicate_api.state.webhook_secret
    settings.REPLICATE_TIMEOUT = 2.0
    settings.GENERATION_POLL_INTERVAL = 0.01
    settings.GENERATION_INLINE_WAIT = 0
    settings.WEBHOOK_BASE_URL = ""
    return replicate_api


def test_a_job_still_running_at_replicate_is_stopped_and_the_receipt_says_so(
    client, alice, replicate_env, django_capture_on_commit_callbacks
):
    billing.credits_grant(user=alice, amount=10, reason="admin_grant", idempotency_key="fund")
    replicate_env.script("black-forest-labs/flux-schnell", reads_before_final=1000)
    entry = CatalogEntry.objects.get(slug="flux-schnell")
    with django_capture_on_commit_callbacks(execute=True):
        running = generation_services.generation_submit(
            user=alice, spec=generation_services.GenerationSpec(model=entry, values={"prompt": "a slow one"})
        )
    running.refresh_from_db()
    assert running.status == Status.RUNNING and running.provider_prediction_id
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/privacy/delete/", {"confirmation": alice.email})

    cancel = ("POST", f"/v1/predictions/{running.provider_prediction_id}/cancel")
    assert cancel in replicate_env.state.requests
    assert replicate_env.state.predictions[running.provider_prediction_id]["status"] == "canceled"
    receipt = ErasureReceipt.objects.get()
    assert receipt.status == ErasureStatus.DONE and receipt.counts["provider_jobs"] == 1
    assert "Jobs at the image provider: 1 still running, asked to stop." in mail.outbox[-1].body


def test_staff_find_the_kept_money_records_by_the_subject(client, alice, django_capture_on_commit_callbacks):
    billing.credits_grant_signup_bonus(user=alice)
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/privacy/delete/", {"confirmation": alice.email})
    subject = ErasureReceipt.objects.get().subject
    staff = UserFactory(email="root@atelier.local", is_staff=True, is_superuser=True)
    client.force_login(staff)
    found = client.get("/admin/billing/wallet/", {"q": str(subject)}).content.decode()
    assert str(subject) in found and "1 wallet" in found
    assert client.get("/admin/billing/wallet/", {"q": "someone@example.com"}).status_code == 200
    ledger = client.get("/admin/billing/ledgerentry/", {"q": str(subject)}).content.decode()
    assert "Welcome credits" in ledger
    assert client.get("/admin/billing/payment/", {"q": "not-a-uuid"}).status_code == 200


def test_kept_money_records_are_deleted_once_the_tax_law_period_has_passed(
    client, alice, bob, settings, django_capture_on_commit_callbacks
):
    settings.PRIVACY_TAX_RECORDS_YEARS = 10
    billing.credits_grant_signup_bonus(user=alice)
    billing.credits_grant_signup_bonus(user=bob)
    staff = UserFactory(email="support@atelier.local", is_staff=True)
    billing.credits_adjust(user=alice, amount=3, reason="goodwill", staff=staff)
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/privacy/delete/", {"confirmation": alice.email})
    wallet = Wallet.objects.get(subject=ErasureReceipt.objects.get().subject)
    entries = LedgerEntry.objects.filter(wallet=wallet)
    assert entries.count() == 2

    entries.update(created_at=timezone.now() - timedelta(days=365 * 9))  # 9 years on: still kept
    resume_erasures()
    assert Wallet.objects.filter(pk=wallet.pk).exists() and entries.count() == 2

    entries.update(created_at=timezone.now() - timedelta(days=365 * 10 + 3))  # past 10 years: gone
    resume_erasures()
    assert not Wallet.objects.filter(pk=wallet.pk).exists() and not LedgerEntry.objects.filter(wallet_id=wallet.pk)
    assert not CreditAdjustment.objects.filter(subject=wallet.subject).exists()
    assert Wallet.objects.get(user=bob).entries.count() == 1  # a living person's records are never touched


def test_finished_receipts_go_after_their_retention_period(settings, db):
    settings.PRIVACY_RETENTION_ERASURE_RECEIPTS_DAYS = 30
    old = ErasureReceipt.objects.create(status=ErasureStatus.DONE, finished_at=timezone.now() - timedelta(days=31))
    recent = ErasureReceipt.objects.create(status=ErasureStatus.DONE, finished_at=timezone.now() - timedelta(days=29))
    unfinished = ErasureReceipt.objects.create(
        status=ErasureStatus.FAILED, requested_at=timezone.now() - timedelta(days=90)
    )
    assert erasure_services.erasure_receipts_purge() == 1
    assert set(ErasureReceipt.objects.values_list("pk", flat=True)) == {recent.pk, unfinished.pk}
    assert not ErasureReceipt.objects.filter(pk=old.pk).exists()


def test_a_staff_account_is_not_erased_from_the_privacy_centre(client, db):
    staff = UserFactory(email="support@atelier.local", is_staff=True)
    reauthenticated(client, staff)
    assert "ask another administrator" in client.get("/privacy/").content.decode()
    response = client.post("/privacy/delete/", {"confirmation": staff.email})
    assert response.status_code == 403 and "can't be deleted from here" in response.content.decode()
    staff.refresh_from_db()
    assert staff.is_active and not ErasureReceipt.objects.exists()
    with pytest.raises(erasure_services.StaffAccountNotErasable):
        erasure_services.account_erasure_start(user=staff)


def test_a_former_staff_member_with_admin_history_is_not_erased_from_here(client, db):
    """Django's admin history cascades with its author: it must outlive them."""
    from django.contrib.admin.models import ADDITION

    former = UserFactory(email="former@atelier.local")
    LogEntry.objects.log_actions(
        user_id=former.pk, queryset=type(former).objects.filter(pk=former.pk), action_flag=ADDITION
    )
    reauthenticated(client, former)
    response = client.post("/privacy/delete/", {"confirmation": former.email})
    assert response.status_code == 403 and "privacy@" in response.content.decode()
    former.refresh_from_db()
    assert former.is_active and LogEntry.objects.filter(user=former).exists()


def test_staff_cannot_delete_an_account_in_the_admin_bypassing_erasure(client, alice):
    root = UserFactory(email="root@atelier.local", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get(f"/admin/accounts/user/{alice.pk}/delete/").status_code == 403
    changelist = client.get("/admin/accounts/user/").content.decode()
    assert "delete_selected" not in changelist


def test_admin_log_lines_about_other_rows_lose_the_name_and_ids_keep_their_letters(
    client, db, django_capture_on_commit_callbacks
):
    from django.contrib.admin.models import ADDITION

    ada = UserFactory(email="ada@example.com", display_name="Ada")
    staff = UserFactory(email="support@atelier.local", is_staff=True)
    billing.credits_grant_signup_bonus(user=ada)
    adjustment = billing.credits_adjust(user=ada, amount=5, reason="goodwill for Ada", staff=staff)
    LogEntry.objects.log_actions(
        user_id=staff.pk, queryset=CreditAdjustment.objects.filter(pk=adjustment.pk), action_flag=ADDITION
    )
    wallet = Wallet.objects.get(user=ada)
    # A reference whose hex digits spell the name: an id, never a name.
    LedgerEntry.objects.filter(wallet=wallet, reason="signup_bonus").update(reference="generation:3fadab12-aaaa")
    reauthenticated(client, ada)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/privacy/delete/", {"confirmation": ada.email})

    entry = LogEntry.objects.get(user=staff)
    assert "ada@example.com" not in entry.object_repr and "subject:" in entry.object_repr
    kept = LedgerEntry.objects.filter(wallet=wallet)
    assert kept.filter(reference="generation:3fadab12-aaaa").exists()
    assert CreditAdjustment.objects.get(pk=adjustment.pk).reason.startswith("goodwill for subject:")


def test_an_unfinished_multipart_upload_under_the_prefix_is_aborted(
    client, alice, s3_storage, django_capture_on_commit_callbacks
):
    """An export cut short leaves parts that object listings do not show."""
    s3, bucket = s3_storage["client"], s3_storage["bucket"]
    key = f"users/{alice.public_id}/exports/cut-short.zip"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"PK" * 1000)
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/privacy/delete/", {"confirmation": alice.email})
    assert ErasureReceipt.objects.get().status == ErasureStatus.DONE
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=f"users/{alice.public_id}/").get("Uploads", []) == []


def test_a_refused_receipt_address_is_not_kept_to_retry(client, alice, monkeypatch, django_capture_on_commit_callbacks):
    import smtplib

    from privacy.services import erasure as module

    def refuse(*args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({alice.email: (550, b"mailbox unavailable")})

    monkeypatch.setattr(module, "send_mail", refuse)
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/privacy/delete/", {"confirmation": alice.email})
    receipt = ErasureReceipt.objects.get()
    assert receipt.status == ErasureStatus.DONE and receipt.email == ""


def test_a_second_run_of_the_same_erasure_waits_its_turn(db):
    from django.db import connection

    from privacy.tasks import erasure as tasks

    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite runs one process")
    receipt = ErasureReceipt.objects.create(email="gone@example.com")
    with tasks._run_lock(receipt.pk) as held:
        assert held
        # another worker (another database session) is refused while this one holds it
        from django.db import connections

        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [tasks._LOCK_CLASS, receipt.pk])
                assert cursor.fetchone()[0] is False
        finally:
            other.close()
    with tasks._run_lock(receipt.pk) as held_again:
        assert held_again  # released at the end of the run
