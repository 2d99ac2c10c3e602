"""Put the one-retry-per-job index back where migration 0006 dropped it.

On SQLite, 0006 rebuilt `generation_generation` (a new column with a default) and the rebuild kept
only what the migration state knew, which did not yet include 0004's index. 0004 now records it
in the state, so fresh databases keep it; this makes sure databases migrated before that have it
too. `IF NOT EXISTS` makes it a no-op on PostgreSQL and on fresh databases.
"""

from django.db import migrations

CREATE_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS generation_retry_of_once ON generation_generation (retry_of_id)"


def ensure_index(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL never rebuilds tables: 0004's index is still there
    schema_editor.execute(CREATE_INDEX)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0007_pending_upload_variations"),
    ]

    operations = [
        migrations.RunPython(ensure_index, migrations.RunPython.noop),
    ]
