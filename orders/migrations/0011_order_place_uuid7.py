"""okada_order_place() v4: the rows it writes get time-ordered ids (UUID v7), like the models' (0010).

PostgreSQL 15 has no uuidv7() (18 has), so okada_uuid7() makes one (RFC 9562): the random bits of
gen_random_uuid() with the first 48 replaced by the Unix time in milliseconds and the version
nibble turned from 4 into 7 (0100 | 0011); the variant bits stay as they are. Being a single
SELECT in SQL, it is inlined into the statements that call it.

The body is v3's (0006) with okada_uuid7() in place of gen_random_uuid(), and with 0009's
planner settings written into the definition: CREATE OR REPLACE drops settings that ALTER FUNCTION
added.
"""

from importlib import import_module

from django.db import migrations

V3 = import_module("orders.migrations.0006_order_place_function_arrays")
INDEX_SCANS_ONLY = import_module("orders.migrations.0009_order_place_index_scans_only")

UUID7 = r"""
CREATE FUNCTION public.okada_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT encode(set_bit(set_bit(
               overlay(uuid_send(gen_random_uuid())
                       PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                                         FROM 3)
                       FROM 1 FOR 6),
               52, 1), 53, 1), 'hex')::uuid
$$;
COMMENT ON FUNCTION public.okada_uuid7() IS
    'A UUID v7 (RFC 9562): Unix time in milliseconds, then random bits; new ids sort last.';
"""


def _v4(v3: str) -> str:
    """v3's CREATE, as CREATE OR REPLACE, with v7 ids and the planner settings of 0009."""
    create = "CREATE OR REPLACE FUNCTION" + v3.split("CREATE FUNCTION", 1)[1]
    assert create.count("gen_random_uuid()") == 4, "v3 changed: write v4 out in full"
    generic = "SET plan_cache_mode = force_generic_plan\n"
    assert generic in create
    return create.replace("gen_random_uuid()", "okada_uuid7()").replace(
        generic, generic + "SET enable_seqscan = off\nSET enable_bitmapscan = off\n"
    )


FORWARD = [UUID7, _v4(V3.SQL)]
REVERSE = [
    f"DROP FUNCTION {INDEX_SCANS_ONLY.SIGNATURE}",
    V3.SQL,
    *INDEX_SCANS_ONLY.Migration.operations[0].sql,  # type: ignore[attr-defined]
    "DROP FUNCTION public.okada_uuid7()",
]


class Migration(migrations.Migration):
    dependencies = [("orders", "0010_uuid7_ids")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
