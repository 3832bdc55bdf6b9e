"""okada_idempotency_lookup(): take an Idempotency-Key's lock, then read its record, in one call.

An idempotent POST runs in one transaction (`okada.core.api.idempotency`): it first takes a
transaction-scoped advisory lock on (scope, key) without waiting, then looks the record up. The
lookup must read a snapshot taken after the lock is held: the previous holder's record commits
just before its lock is released, and a snapshot taken before the lock could miss it (then the
request would run a second time). A VOLATILE plpgsql function takes a new snapshot for each
statement (READ COMMITTED), so this call is the two steps in one round trip.

The lock is `pg_try_advisory_xact_lock(int4, int4)`: the first int (0x4944454d, "IDEM") names
the idempotency store, the second is `hashtext(scope || E'\n' || key)`. The two-int form never
shares a lock with the bigint form the job locks take (`okada.core.jobs`: objsubid 2, not 1).

One row when the lock is held by someone else (`acquired` false); else the unexpired record
(`acquired` true), or no row. The headers come as JSON text (Django's connections leave jsonb
unparsed, for JSONField to parse).
"""

from django.db import migrations

SIGNATURE = "public.okada_idempotency_lookup(text, text, timestamptz)"

SQL = r"""
CREATE FUNCTION public.okada_idempotency_lookup(p_scope text, p_key text, p_expired_before timestamptz)
RETURNS TABLE (
    acquired boolean, request_hash text, method text, path text, state text,
    locked_until timestamptz, response_status integer, response_headers text, response_body bytea
)
LANGUAGE plpgsql VOLATILE
SET search_path = public, pg_temp
AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1229210957, hashtext(p_scope || E'\n' || p_key)) THEN
        acquired := false;
        RETURN NEXT;
        RETURN;
    END IF;
    -- A statement of its own, so a snapshot taken now that the lock is held.
    RETURN QUERY
        SELECT true, r.request_hash::text, r.method::text, r.path::text, r.state::text,
               r.locked_until, r.response_status::integer, r.response_headers::text, r.response_body
          FROM core_idempotencyrecord r
         WHERE r.scope = p_scope AND r.key = p_key AND r.created_at >= p_expired_before;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("core", "0006_roles")]

    operations = [migrations.RunSQL(SQL, f"DROP FUNCTION {SIGNATURE}")]
