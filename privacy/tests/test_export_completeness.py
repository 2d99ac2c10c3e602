"""Completeness of the export, by introspection: every model with a foreign key (or one-to-one) to
the user, or to a row that has one, however many steps away, is in data.json or in the export
service's commented EXCLUSIONS. Adding a user-linked model without deciding makes this fail."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.storage import default_storage

from privacy.services.export import EXCLUSIONS, EXPORTED
from privacy.tests.test_export import build, history

pytestmark = pytest.mark.django_db


def linked_relations() -> dict[str, set[str]]:
    """label -> the names of its FK/O2O fields that lead to the user (directly or through a linked
    model), walking every installed model (auto-created many-to-many tables included) until
    nothing new is found."""
    user_model = get_user_model()
    linked = {user_model}
    relations: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for model in apps.get_models(include_auto_created=True):
            for field in model._meta.concrete_fields:
                if not (field.many_to_one or field.one_to_one) or field.related_model not in linked:
                    continue
                names = relations.setdefault(model._meta.label, set())
                if field.name not in names:
                    names.add(field.name)
                    changed = True
                if model not in linked:
                    linked.add(model)
                    changed = True
    return relations


def test_every_user_linked_model_is_exported_or_excluded_with_a_reason():
    relations = linked_relations()
    # The walk really finds the indirect ones (two steps away).
    assert "generation.Asset" in relations and "billing.LedgerEntry" in relations
    assert "socialaccount.SocialToken" in relations and "account.EmailConfirmation" in relations

    unhandled = sorted(label for label in relations if label not in EXPORTED and label not in EXCLUSIONS)
    assert not unhandled, (
        f"Models linked to the user are neither in data.json nor excluded: {unhandled}. Add each to EXPORTED "
        "(and write it in _data_json_text and export_schema.json) or to EXCLUSIONS with the reason, in "
        "privacy/services/export.py."
    )
    # Each link is the one the export follows, or excluded by itself (a staff actor, a second path).
    loose = sorted(
        f"{label}.{name}"
        for label, names in relations.items()
        if label not in EXCLUSIONS
        for name in names
        if name != EXPORTED[label][1].split("__")[0] and f"{label}.{name}" not in EXCLUSIONS
    )
    assert not loose, f"Links to the user that the export neither follows nor excludes: {loose}"
    assert all(reason.strip() for reason in EXCLUSIONS.values())


def test_the_lists_name_only_real_links():
    """No stale entries: everything EXPORTED or EXCLUDED is a model (or link) the walk finds."""
    relations = linked_relations()
    known = set(relations) | {f"{label}.{name}" for label, names in relations.items() for name in names}
    known.add(get_user_model()._meta.label)
    assert sorted(set(EXPORTED) - known) == []
    assert sorted(set(EXCLUSIONS) - known) == []


def _at(data, path: str):
    """The rows at a dotted path of data.json; "x[]" walks into each item of a list."""
    nodes = [data]
    for part in path.split("."):
        many = part.endswith("[]")
        key = part.removesuffix("[]")
        nodes = [node[key] for node in nodes]
        if many:
            nodes = [item for node in nodes for item in node]
    rows = []
    for node in nodes:
        if isinstance(node, list):
            rows.extend(node)
        elif node is not None:
            rows.append(node)
    return rows


@pytest.fixture
def everything(alice, django_capture_on_commit_callbacks):
    """A person with at least one row in every exported model."""
    from allauth.socialaccount.models import SocialAccount

    from accounts.services import api_key_create
    from billing.models import (
        CheckoutKind,
        CheckoutSession,
        CreditAdjustment,
        Customer,
        Plan,
        Subscription,
        SubscriptionStatus,
    )
    from privacy.models import PolicyAcceptance, PolicyNotice, PolicyVersion, PrivacySettings

    history(alice, django_capture_on_commit_callbacks)
    alice.groups.add(Group.objects.create(name="beta testers"))
    alice.user_permissions.add(Permission.objects.get(codename="view_generation"))
    SocialAccount.objects.create(user=alice, provider="google", uid="42", extra_data={"name": "Alice"})
    CreditAdjustment.objects.create(user=alice, amount=5, reason="Sorry for the outage")
    Customer.objects.create(user=alice, stripe_customer_id="cus_alice")
    Subscription.objects.create(
        user=alice, plan=Plan.objects.first(), stripe_subscription_id="sub_1", status=SubscriptionStatus.ACTIVE
    )
    CheckoutSession.objects.create(user=alice, stripe_session_id="cs_1", kind=CheckoutKind.PLAN)
    api_key_create(user=alice, name="My GPT", scopes=["read"])
    from datetime import timedelta

    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application

    from developers.models import WebhookEndpoint

    chatgpt = Application.objects.create(
        name="ChatGPT",
        client_type="confidential",
        authorization_grant_type="authorization-code",
        redirect_uris="https://chat.openai.com/aip/g-1/oauth/callback",
    )
    AccessToken.objects.create(
        user=alice,
        application=chatgpt,
        token="at-secret",
        scope="read generate",
        expires=timezone.now() + timedelta(hours=1),
    )
    Application.objects.create(
        user=alice,
        name="Alice's tool",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris="http://127.0.0.1:33418/callback",
    )
    WebhookEndpoint.objects.create(owner=alice, url="https://hooks.example.com/atelier", secret="whsec_x")
    policy = PolicyVersion.objects.get_or_create(version="2026-11-01", defaults={"body": "Policy"})[0]
    PolicyAcceptance.objects.get_or_create(user=alice, policy=policy)
    PolicyNotice.objects.create(user=alice, policy=policy)
    PrivacySettings.objects.create(user=alice, history_retention_days=30)
    return alice


def test_data_json_holds_every_row_of_every_exported_model(everything, bob, django_capture_on_commit_callbacks):
    history(bob, django_capture_on_commit_callbacks)  # someone else's rows must not come along
    export = build(everything, django_capture_on_commit_callbacks)
    with default_storage.open(export.storage_key, "rb") as handle:
        data = json.loads(zipfile.ZipFile(io.BytesIO(handle.read())).read("data.json"))
    for label, (section, lookup) in EXPORTED.items():
        model = apps.get_model(label)
        expected = model.objects.filter(**{lookup: everything.pk if lookup == "pk" else everything}).count()
        assert expected > 0, f"the fixture has no {label} row: the check below would prove nothing"
        assert len(_at(data, section)) == expected, (
            f"{label}: {expected} rows, {section} holds {len(_at(data, section))}"
        )
