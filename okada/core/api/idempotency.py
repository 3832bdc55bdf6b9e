"""`Idempotency-Key` for POSTs: a retry gets the first answer, never a second write.

A key is scoped to the credential that sent it (two vendors may use the same key; neither sees
the other's record). The first request *claims* the key with one `INSERT ... ON CONFLICT`,
committed at once so that a concurrent retry sees it:
- a retry while the first still runs gets 409 `idempotency_in_flight` (retry later);
- a retry after it finished gets the first status, headers and body again (`Idempotent-Replayed`);
- the same key with another method, path or body gets 422 `idempotency_mismatch`.

The handler then runs in one transaction with the write of its answer (`complete`), so a crash
can never leave a change without its recorded answer: either both commit or neither. An answer
of 500 or more is not kept (the claim is released: nothing was applied, a retry runs again).
A worker that dies mid-request leaves its claim `in_flight`; after `IN_FLIGHT_SECONDS` a retry
of the same request takes it over. Records are kept OKADA_IDEMPOTENCY_TTL_HOURS (24 h), then a
reuse of the key is a new request; `prune` deletes them (hourly job).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from okada.core.db import execute, one_value
from okada.core.errors import Conflict, IdempotencyMismatch, InvalidInput
from okada.core.ids import uuid7
from okada.core.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
IN_FLIGHT_SECONDS = 120  # longer than any request may run (gunicorn's timeout is 30 s)
REPLAYED_HEADERS = ("Content-Type", "Location", "Content-Language", "ETag")


class IdempotencyInFlight(Conflict):
    code = "idempotency_in_flight"
    default_message = _("A request with this Idempotency-Key is still being processed: retry shortly.")


@dataclass(frozen=True)
class Claim:
    record_id: uuid.UUID


@dataclass(frozen=True)
class Replay:
    status: int
    headers: dict[str, str]
    body: bytes

    def response(self) -> HttpResponse:
        response = HttpResponse(self.body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        response["Idempotent-Replayed"] = "true"
        return response


def validate_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.isprintable():
        raise InvalidInput(
            _("The Idempotency-Key header must be 1 to %(n)d printable characters.") % {"n": MAX_KEY_LENGTH},
            field=HEADER,
        )
    return raw


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request a key names: a JSON body is compared by value (key order and spacing aside)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(f"{method}\n{path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


# One row whatever happens: the new or retaken record's id, or NULL when the key is taken.
_CLAIM = """
WITH claimed AS (
INSERT INTO core_idempotencyrecord AS r
       (id, scope, key, request_hash, method, path, state, locked_until, response_headers, created_at)
VALUES (%(id)s, %(scope)s, %(key)s, %(hash)s, %(method)s, %(path)s, 'in_flight', %(locked_until)s,
        '{}'::jsonb, %(now)s)
ON CONFLICT (scope, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, method = EXCLUDED.method, path = EXCLUDED.path,
       state = 'in_flight', locked_until = EXCLUDED.locked_until, response_status = NULL,
       response_headers = '{}'::jsonb, response_body = NULL, created_at = EXCLUDED.created_at
 WHERE r.created_at < %(expired_before)s
    OR (r.state = 'in_flight' AND r.locked_until < %(now)s AND r.request_hash = EXCLUDED.request_hash)
RETURNING r.id
)
SELECT (SELECT id FROM claimed)
"""


def claim(*, scope: str, key: str, method: str, path: str, body: bytes) -> Claim | Replay:
    """Claim `key` for this request, or say what it got. Called outside any transaction
    (ATOMIC_REQUESTS is off), so the claim is committed at once and concurrent retries see it."""
    request_hash = fingerprint(method, path, body)
    for _attempt in range(3):  # a record released or expired between our two statements: again
        now = timezone.now()
        # Prepared, and one round trip: outside a transaction the statement commits by itself.
        record_id = one_value(
            _CLAIM,
            {
                "id": uuid7(),
                "scope": scope,
                "key": key,
                "hash": request_hash,
                "method": method,
                "path": path[:500],
                "locked_until": now + timedelta(seconds=IN_FLIGHT_SECONDS),
                "now": now,
                "expired_before": _expired_before(now),
            },
        )
        if record_id is not None:
            return Claim(record_id=record_id)
        record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if record is None:
            continue
        if record.request_hash != request_hash:
            raise IdempotencyMismatch(
                _("This Idempotency-Key was already used for a different request (%(method)s %(path)s).")
                % {"method": record.method, "path": record.path}
            )
        if record.state == IdempotencyRecord.State.IN_FLIGHT:
            raise IdempotencyInFlight(retry_after=1)
        return Replay(
            status=record.response_status or 200,
            headers=dict(record.response_headers),
            body=bytes(record.response_body or b""),
        )
    raise IdempotencyInFlight(retry_after=1)


_COMPLETE = """
UPDATE core_idempotencyrecord
   SET state = 'done', response_status = %s, response_headers = %s::jsonb, response_body = %s
 WHERE id = %s
"""


def complete(claim: Claim, response: HttpResponse) -> None:
    """Keep the answer; call it in the transaction of the change the request made. One
    statement, prepared (it runs on every idempotent POST)."""
    headers = {h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)}
    execute(_COMPLETE, [response.status_code, json.dumps(headers), response.content, claim.record_id])


def release(claim: Claim) -> None:
    """Forget a claim whose request failed (nothing applied): a retry runs it again."""
    IdempotencyRecord.objects.filter(pk=claim.record_id, state=IdempotencyRecord.State.IN_FLIGHT).delete()


def _expired_before(now: datetime) -> datetime:
    return now - timedelta(hours=settings.OKADA_IDEMPOTENCY_TTL_HOURS)


def prune(*, now: datetime | None = None, batch: int = 10_000) -> int:
    """Delete records older than OKADA_IDEMPOTENCY_TTL_HOURS, in batches (short locks)."""
    cutoff = _expired_before(now or timezone.now())
    deleted = 0
    while True:
        ids = list(
            IdempotencyRecord.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=ids, created_at__lt=cutoff).delete()[0]
