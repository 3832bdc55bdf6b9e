# pg_stat_statements: the server preloads its library (devservices writes shared_preload_libraries);
# the extension's views must also be created in this database. Creating it needs a superuser (or a
# role the server lets create it): elsewhere the migration warns and goes on, and the Queries
# screen says the statistics are not available.
from django.db import migrations

CREATE = """
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE WARNING 'pg_stat_statements was not created (%): the Queries screen will say so', SQLERRM;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("health", "0001_initial")]

    # Reversing keeps the extension: other tools may read it, and it holds no data of ours.
    operations = [migrations.RunSQL(CREATE, migrations.RunSQL.noop)]
