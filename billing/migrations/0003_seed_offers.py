"""Seed what we sell: three credit packs and the Pro plan. Prices are editable in the admin;
`manage.py stripe_prices` creates the matching Stripe Products/Prices and stores their ids."""

from django.db import migrations

PACKS = [
    {"slug": "100", "title": "100 credits", "credits": 100, "price_cents": 500, "order": 10},
    {"slug": "500", "title": "500 credits", "credits": 500, "price_cents": 2000, "order": 20},
    {"slug": "2000", "title": "2,000 credits", "credits": 2000, "price_cents": 6000, "order": 30},
]
PLANS = [
    {
        "slug": "pro",
        "title": "Pro",
        "monthly_credits": 600,
        "price_cents": 1500,
        "features": "600 credits every month\nThe Pro-only FLUX1.1 [pro] model\nCancel any time; Pro stays until the period ends",
    }
]


def seed(apps, schema_editor):
    CreditPack = apps.get_model("billing", "CreditPack")
    Plan = apps.get_model("billing", "Plan")
    for row in PACKS:
        row = dict(row)
        CreditPack.objects.update_or_create(slug=row.pop("slug"), defaults=row)
    for row in PLANS:
        row = dict(row)
        Plan.objects.update_or_create(slug=row.pop("slug"), defaults=row)


def unseed(apps, schema_editor):
    apps.get_model("billing", "CreditPack").objects.filter(slug__in=[p["slug"] for p in PACKS]).delete()
    apps.get_model("billing", "Plan").objects.filter(slug__in=[p["slug"] for p in PLANS]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_stripe")]
    operations = [migrations.RunPython(seed, unseed)]
