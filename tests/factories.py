from __future__ import annotations

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import User

PASSWORD = "correct-horse-battery-staple"


def current_policy_for_tests():
    """The current PolicyVersion, seeded again if a transactional test flushed the database
    (the data migration's own function, like the catalog fixture does)."""
    import importlib

    from django.apps import apps

    from privacy.policy import current_policy, current_policy_forget

    policy = current_policy()
    if policy is None:
        importlib.import_module("privacy.migrations.0003_seed_policy").seed(apps, None)
        current_policy_forget()
        policy = current_policy()
    return policy


class UserFactory(factory.django.DjangoModelFactory):
    """A verified person past the age gate, with PASSWORD as the password."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    display_name = factory.Faker("name")
    age_confirmed_at = factory.LazyFunction(timezone.now)
    policy_accepted_at = factory.LazyFunction(timezone.now)
    policy_version = factory.LazyFunction(lambda: current_policy_for_tests().version)

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):
        obj.set_password(extracted or PASSWORD)
        if create:
            obj.save(update_fields=["password"])

    @factory.post_generation
    def accepted(obj, create, extracted, **kwargs):
        """The acceptance of the version named on the row, as sign-up records it (`accepted=False`
        for someone who never accepted any; pass policy_version="" too)."""
        if create and extracted is not False and obj.policy_version:
            from privacy.models import PolicyAcceptance, PolicyVersion

            policy = PolicyVersion.objects.filter(version=obj.policy_version).first()
            if policy is not None:
                PolicyAcceptance.objects.get_or_create(user=obj, policy=policy)

    @factory.post_generation
    def verified(obj, create, extracted, **kwargs):
        if create:
            EmailAddress.objects.create(user=obj, email=obj.email, primary=True, verified=extracted is not False)
