"""One retry per failed generation, enforced by the database (issue 9, item 8).

A unique index on `retry_of_id`: twenty parallel "Try again" clicks can create one retry at most;
the service catches the conflict and answers with the existing retry. NULLs do not collide (in
PostgreSQL and SQLite alike), so first attempts are unaffected.

Rows from before this migration may already hold several retries of one job (the bug this fixes):
the later ones are detached (`retry_of` set to NULL, as `on_delete=SET_NULL` would) so the index
can be built; the rows themselves, their assets and their ledger entries stay.

The index is created with SQL (PostgreSQL and SQLite alike); the model state records it as the
`UniqueConstraint` the model declares, so Django knows it: SQLite rebuilds a table for some later
changes (0006 did), and a rebuild keeps only what the state knows. Migration 0008 puts the index
back on databases where 0006 had already dropped it.
"""

from django.db import migrations, models

DETACH_EXTRA_RETRIES = """
UPDATE generation_generation SET retry_of_id = NULL
WHERE id IN (
    SELECT g.id FROM generation_generation g
    WHERE g.retry_of_id IS NOT NULL
      AND EXISTS (
          SELECT 1 FROM generation_generation h
          WHERE h.retry_of_id = g.retry_of_id AND h.id < g.id
      )
)
"""

CREATE_INDEX = "CREATE UNIQUE INDEX generation_retry_of_once ON generation_generation (retry_of_id)"
DROP_INDEX = "DROP INDEX generation_retry_of_once"


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0003_catalog_pro_only"),
    ]

    operations = [
        migrations.RunSQL(DETACH_EXTRA_RETRIES, migrations.RunSQL.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE_INDEX, DROP_INDEX)],
            state_operations=[
                migrations.AddConstraint(
                    model_name="generation",
                    constraint=models.UniqueConstraint(fields=["retry_of"], name="generation_retry_of_once"),
                )
            ],
        ),
    ]
