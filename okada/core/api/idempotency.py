"""`Idempotency-Key` for POSTs: a retry gets the first answer, never a second write.

A key is scoped to the credential that sent it (two vendors may use the same key; neither sees
the other's record). An idempotent POST is one transaction: `begin` opens it by locking the key,
the handler runs, and `keep` writes the record with the answer; either all of it commits or
none (a crash can never leave a change without its recorded answer, nor an answer without it).
- a retry while the first still runs gets 409 `idempotency_in_flight` (retry later);
- a retry after it finished gets the first status, headers and body again (`Idempotent-Replayed`);
- the same key with another method, path or body gets 422 `idempotency_mismatch`.

Why a lock, and why it is not a row: a request must know that another one holds its key before
that one commits. A claim row committed on its own (the way this module used to work) costs a
second transaction and its WAL flush per request, and a dead worker's claim blocked its key
until a timeout. A transaction-scoped advisory lock, taken without waiting
(`pg_try_advisory_xact_lock(int4, int4)`, see core migration 0007), is seen by every other
session at once and goes with its transaction: a worker that dies mid-request has its
transaction aborted and the lock released, so a retry runs at once. The lock's second int is a
32-bit hash of scope and key: one key always meets itself on one lock, and two different keys
whose hashes collide only cost a spurious 409 to whichever comes while the other runs (its retry
then proceeds).

Why the lookup is a statement after the lock: in READ COMMITTED each statement reads its own
snapshot, and the previous holder's record commits just before its lock goes. A statement that
took the lock and read the record together would read a snapshot from before the lock, miss
that record and run the request a second time. `okada_idempotency_lookup()` takes the lock and
then reads in a statement of its own (a VOLATILE plpgsql function takes a new snapshot per
statement): one round trip.

An answer of 500 or more, or an exception, rolls the transaction back: nothing is kept and a
retry runs again. So does a refusal of the caller rather than of the request (401, 403, 429:
who is calling, what they may do, their vendor's standing, their rate; `views.is_kept`), a 415
(the body's Content-Type, which the fingerprint does not hold: the corrected retry must run), and
a refusal that depends only on the vendor's standing whatever its status (409
`vendor_not_active`: `views.VENDOR_STANDING_CODES`): it wrote nothing, and replaying it would
keep refusing for 24 h after the cause went (a vendor reactivated). Answers about the request
itself are kept: 2xx, 400, 404, 409 (but those codes), 422. Records are
kept OKADA_IDEMPOTENCY_TTL_HOURS (24 h), then a reuse of the key is a new request; `prune`
deletes them (hourly job).

Records are written `done`. An `in_flight` record can only be a claim committed by the previous
version of this module (during a rolling deploy): it is honoured as that version did (409 until
`locked_until`, then taken over by the same request), and `keep` never overwrites one that is
still live (the request is refused 409 instead, its transaction rolled back).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from okada.core.db import execute, prepared_rows
from okada.core.errors import Conflict, IdempotencyMismatch, InvalidInput
from okada.core.ids import uuid7
from okada.core.models import IdempotencyRecord
from okada.core.texts import Text

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADERS = ("Content-Type", "Location", "Content-Language", "ETag")


class IdempotencyInFlight(Conflict):
    code = "idempotency_in_flight"
    default_message = _("A request with this Idempotency-Key is still being processed: retry shortly.")


@dataclass(frozen=True)
class Held:
    """The key is locked by this transaction and has no record: run the request, then `keep`."""

    scope: str
    key: str
    request_hash: str
    method: str
    path: str


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
            Text(
                gettext_noop("The Idempotency-Key header must be 1 to %(n)d printable characters."),
                n=MAX_KEY_LENGTH,
            ),
            field=HEADER,
        )
    return raw


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request a key names: a JSON body is compared by value (key order and spacing aside)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON, or nested too deep to compare: the bytes
        canonical = body
    digest = hashlib.sha256(f"{method}\n{path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


_LOOKUP = "SELECT * FROM okada_idempotency_lookup(%s, %s, %s)"


def begin(*, scope: str, key: str, method: str, path: str, body: bytes) -> Held | Replay:
    """Lock `key` for this request and say what to do. Call it first in the request's
    transaction: the lock is held until that transaction ends."""
    request_hash = fingerprint(method, path, body)
    now = timezone.now()
    rows = prepared_rows(_LOOKUP, [scope, key, _expired_before(now)])
    held = Held(scope=scope, key=key, request_hash=request_hash, method=method, path=path[:500])
    if not rows:
        return held
    acquired, hash_, method_, path_, state, locked_until, status, headers, body_ = rows[0]
    if not acquired:
        raise IdempotencyInFlight(retry_after=1)
    if hash_ != request_hash:
        if (method_, path_) == (method, path[:500]):
            raise IdempotencyMismatch(
                _(
                    "This Idempotency-Key was already used with a different body: "
                    "send a new key for a new request."
                )
            )
        raise IdempotencyMismatch(
            Text(
                gettext_noop(
                    "This Idempotency-Key was already used for a different request (%(method)s %(path)s)."
                ),
                method=method_,
                path=path_,
            )
        )
    if state == IdempotencyRecord.State.IN_FLIGHT:  # the previous version's claim (see above)
        if locked_until >= now:
            raise IdempotencyInFlight(retry_after=1)
        return held
    return Replay(status=status or 200, headers=json.loads(headers), body=bytes(body_ or b""))


# Written once, with its answer. The conflict is an expired record of the key (or an abandoned
# claim of the previous version): anything else is a live writer that took no lock, and no row
# is written.
_KEEP = """
INSERT INTO core_idempotencyrecord AS r
       (id, scope, key, request_hash, method, path, state, locked_until,
        response_status, response_headers, response_body, created_at)
VALUES (%(id)s, %(scope)s, %(key)s, %(hash)s, %(method)s, %(path)s, 'done', %(now)s,
        %(status)s, %(headers)s::jsonb, %(body)s, %(now)s)
ON CONFLICT (scope, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, method = EXCLUDED.method, path = EXCLUDED.path,
       state = 'done', locked_until = EXCLUDED.locked_until,
       response_status = EXCLUDED.response_status, response_headers = EXCLUDED.response_headers,
       response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at
 WHERE r.created_at < %(expired_before)s OR (r.state = 'in_flight' AND r.locked_until < %(now)s)
"""


def keep(held: Held, response: HttpResponse) -> None:
    """Write the record with its answer, in the transaction of the change the request made. One
    statement, prepared (it runs on every idempotent POST)."""
    now = timezone.now()
    headers = {h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)}
    written = execute(
        _KEEP,
        {
            "id": uuid7(),
            "scope": held.scope,
            "key": held.key,
            "hash": held.request_hash,
            "method": held.method,
            "path": held.path,
            "now": now,
            "status": response.status_code,
            "headers": json.dumps(headers),
            "body": response.content,
            "expired_before": _expired_before(now),
        },
    )
    if not written:
        raise IdempotencyInFlight(retry_after=1)


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
