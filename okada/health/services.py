"""Every write of database health: snapshots and their pruning, alert evaluation and
acknowledgement, and what a superuser may do to the database (cancel or terminate a session,
reset the statement statistics), each logged as a DatabaseAction."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import formats, timezone, translation
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from okada.core import health_registry as registry
from okada.core import services as core
from okada.core.actors import Actor
from okada.core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from okada.core.roles import OPERATIONS
from okada.core.texts import Text

from . import pg
from .display import alert_text, kind_label
from .models import Alert, DatabaseAction, IndexStat, QueryStat, QueryText, Snapshot, TableStat

log = logging.getLogger(__name__)

ACKNOWLEDGE_PERMISSION = "health.acknowledge_alert"
# The snapshot job reads more than a screen does, and nobody waits for it.
SNAPSHOT_TIMEOUT_FACTOR = 5
QUERY_TEXT_MAX = 10_000
KEY_MAX = 200
# Backends that may be cancelled or terminated from the admin: never a replication sender, the
# checkpointer or any other server process.
SIGNALLABLE = ("client backend", "autovacuum worker")


# --- Snapshots ---------------------------------------------------------------------------------


# Stored in English in the JobRun summary, shown in the reader's language.
ALREADY_RECORDED = gettext_noop("this hour is already recorded")


def _hour_of(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def snapshot_take(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Record this hour's snapshot of table, index and statement statistics. Idempotent: an hour
    already recorded is left as it is (a rerun after a crash records it once; the rows are written
    in one transaction, so there is never half a snapshot)."""
    now = now or timezone.now()
    hour = _hour_of(now)
    if Snapshot.objects.filter(hour=hour).exists():
        return {"hour": hour.isoformat(), "taken": False, "reason": ALREADY_RECORDED}
    with pg.reads(settings.OKADA_HEALTH_STATEMENT_TIMEOUT_MS * SNAPSHOT_TIMEOUT_FACTOR) as cur:
        db = pg.database(cur)
        tables = pg.tables(cur)
        indexes = pg.indexes(cur)
        status = pg.statements_status(cur)
        # The top statements by each order the Queries screen offers: each has its delta there.
        statements = list(
            {
                q["queryid"]: q
                for order in pg.STATEMENT_ORDER
                for q in pg.statements(cur, order=order, limit=settings.OKADA_HEALTH_SNAPSHOT_QUERIES)
            }.values()
            if status["available"]
            else []
        )
    try:
        with transaction.atomic():
            snapshot = Snapshot.objects.create(
                taken_at=now,
                hour=hour,
                database_bytes=db["bytes"],
                stats_reset=db["stats_reset"],
                statements_reset=status["reset_at"],
            )
            TableStat.objects.bulk_create(
                TableStat(
                    snapshot=snapshot,
                    name=t["name"],
                    parent=t["parent"],
                    kind=t["kind"],
                    total_bytes=t["total_bytes"],
                    table_bytes=t["table_bytes"],
                    index_bytes=t["index_bytes"],
                    toast_bytes=t["toast_bytes"],
                    estimated_rows=t["estimated_rows"],
                    dead_rows=t["dead_rows"],
                    seq_scan=t["seq_scan"],
                    seq_tup_read=t["seq_tup_read"],
                    idx_scan=t["idx_scan"],
                    writes=t["writes"],
                    heap_blks_hit=t["heap_blks_hit"],
                    heap_blks_read=t["heap_blks_read"],
                    idx_blks_hit=t["idx_blks_hit"],
                    idx_blks_read=t["idx_blks_read"],
                )
                for t in tables
            )
            IndexStat.objects.bulk_create(
                IndexStat(
                    snapshot=snapshot,
                    table=i["table"],
                    name=i["name"],
                    bytes=i["bytes"],
                    idx_scan=i["idx_scan"],
                )
                for i in indexes
            )
            QueryText.objects.bulk_create(
                [
                    QueryText(
                        queryid=q["queryid"],
                        # pg_stat_statements leaves a utility statement's values in its text
                        # (ALTER ROLE ... PASSWORD '...'); the Queries screen is Operations'.
                        text=pg.without_literals(q["query"])[:QUERY_TEXT_MAX],
                        last_seen=now,
                    )
                    for q in statements
                ],
                update_conflicts=True,
                unique_fields=["queryid"],
                update_fields=["text", "last_seen"],
            )
            QueryStat.objects.bulk_create(
                QueryStat(
                    snapshot=snapshot,
                    queryid=q["queryid"],
                    calls=q["calls"],
                    total_ms=q["total_ms"],
                    rows=q["rows"],
                    blocks_hit=q["blocks_hit"],
                    blocks_read=q["blocks_read"],
                )
                for q in statements
            )
    except IntegrityError:  # another run recorded this hour meanwhile
        return {"hour": hour.isoformat(), "taken": False, "reason": ALREADY_RECORDED}
    return {
        "hour": hour.isoformat(),
        "taken": True,
        "tables": len(tables),
        "indexes": len(indexes),
        "statements": len(statements),
        "statements_available": status["available"],
    }


def snapshots_prune(*, now: dt.datetime | None = None, days: int | None = None) -> int:
    """Delete snapshots older than OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS, with their rows, and the
    statement texts no kept snapshot uses. Returns the snapshots deleted."""
    keep = days if days is not None else settings.OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS
    cutoff = (now or timezone.now()) - dt.timedelta(days=keep)
    old = list(Snapshot.objects.filter(taken_at__lt=cutoff).values_list("id", flat=True))
    if not old:
        return 0
    with transaction.atomic():
        # One DELETE per table (the rows are many; no per-row cascade in Python).
        for model in (TableStat, IndexStat, QueryStat):
            model.objects.filter(snapshot_id__in=old).delete()
        Snapshot.objects.filter(id__in=old).delete()
        QueryText.objects.filter(last_seen__lt=cutoff).delete()
    return len(old)


# --- Alerts ------------------------------------------------------------------------------------


def _english(finding: registry.Finding) -> str:
    return finding.text().english()


def alerts_evaluate(*, kinds: list[str] | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Run every registered condition (or `kinds`) and bring the alerts in line with what it found:
    a new finding opens an alert (logged at ERROR, emailed to Operations when
    OKADA_HEALTH_ALERT_EMAIL), one seen again repeats it, an open alert not found any more is
    cleared. A condition that raises changes none of its alerts."""
    now = now or timezone.now()
    summary: dict[str, Any] = {"opened": [], "cleared": [], "repeated": 0, "errors": {}}
    for condition in registry.conditions():
        if kinds is not None and condition.kind not in kinds:
            continue
        try:
            findings = condition.evaluate()
        except Exception as exc:
            log.exception("health condition %s could not be evaluated", condition.kind)
            summary["errors"][condition.kind] = f"{type(exc).__name__}: {exc}"[:500]
            continue
        _sync(condition.kind, findings, now, summary)
    return summary


def _sync(kind: str, findings: list[registry.Finding], now: dt.datetime, summary: dict[str, Any]) -> None:
    current = {f"{kind}:{f.subject}"[:KEY_MAX]: f for f in findings}
    with transaction.atomic():
        open_alerts = {a.key: a for a in Alert.objects.open().filter(kind=kind).select_for_update()}
        for key, finding in current.items():
            text = finding.text()
            data: dict[str, Any] = {"message": text.msgid, "params": _jsonable(finding.params)}
            if text.plural is not None:
                data.update(plural=text.plural, number=text.number)
            alert = open_alerts.get(key)
            if alert is not None:
                Alert.objects.filter(pk=alert.pk).update(
                    last_seen_at=now,
                    repeats=F("repeats") + 1,
                    message=_english(finding),
                    data=data,
                    severity=finding.severity,
                    updated_at=now,
                )
                summary["repeated"] += 1
                if finding.severity == registry.CRITICAL and alert.severity != registry.CRITICAL:
                    # Worse than when it was opened (and perhaps acknowledged): told like a new one.
                    log.error(
                        "health alert now critical: %s",
                        _english(finding),
                        extra={"alert": key, "severity": finding.severity},
                    )
                    if settings.OKADA_HEALTH_ALERT_EMAIL:
                        transaction.on_commit(functools.partial(_email, alert.pk))
                continue
            alert = Alert.objects.create(
                key=key,
                kind=kind,
                severity=finding.severity,
                message=_english(finding),
                data=data,
                opened_at=now,
                last_seen_at=now,
            )
            log.error(
                "health alert opened: %s", alert.message, extra={"alert": key, "severity": finding.severity}
            )
            summary["opened"].append(key)
            if settings.OKADA_HEALTH_ALERT_EMAIL:
                transaction.on_commit(functools.partial(_email, alert.pk))
        for key, alert in open_alerts.items():
            if key in current:
                continue
            Alert.objects.filter(pk=alert.pk).update(cleared_at=now, updated_at=now)
            log.warning("health alert cleared: %s", alert.message, extra={"alert": key})
            summary["cleared"].append(key)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as JSON; one that is a Text (e.g. a drill's error) stays one."""
    return Text("", **params).as_json()["params"]


def _email(alert_pk: Any) -> None:
    """Email a new alert to the active members of the Operations group who have an address."""
    alert = Alert.objects.get(pk=alert_pk)
    users = get_user_model().objects.filter(groups__name=OPERATIONS, is_active=True).exclude(email="")
    recipients = sorted({u.email for u in users})
    if not recipients:
        return
    # In the marketplace's language (LANGUAGE_CODE: French), as the admin the team reads; the
    # time in Douala's, as every time the admin shows.
    with translation.override(settings.LANGUAGE_CODE):
        subject = gettext("[Okada] %(severity)s: %(kind)s") % {
            "severity": alert.get_severity_display(),
            "kind": kind_label(alert.kind),
        }
        opened = formats.date_format(timezone.localtime(alert.opened_at), "SHORT_DATETIME_FORMAT")
        message = gettext("%(text)s\n\nOpened %(when)s (%(key)s).") % {
            "text": alert_text(alert),
            "when": opened,
            "key": alert.key,
        }
    try:
        send_mail(subject=subject, message=message, from_email=None, recipient_list=recipients)
    except Exception:  # the mail server is down: the alert is still a row, a banner and a log line
        log.exception("could not email health alert %s", alert.key)
        return
    Alert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())


def alert_acknowledge(*, alert: Alert, actor: Actor) -> Alert:
    """A staff member takes the alert (it stays open until the condition clears). Acknowledging
    twice keeps the first acknowledgement."""
    actor.require(ACKNOWLEDGE_PERMISSION)
    with transaction.atomic():
        alert = core.locked(Alert.objects, alert.pk)
        if alert.acknowledged_at is None:
            alert.acknowledged_at = timezone.now()
            alert.acknowledged_by = actor.user
            alert.save(update_fields=["acknowledged_at", "acknowledged_by", "updated_at"])
            log.info("health alert acknowledged: %s by %s", alert.key, actor)
    return alert


# --- Acting on the database (superusers only) --------------------------------------------------


def _require_superuser(actor: Actor) -> None:
    """Cancelling sessions and resetting statistics are a database administrator's acts: only
    superusers (and trusted operators without a user: commands) may, whatever their groups."""
    trusted = actor.role == Actor.SYSTEM or (actor.role == Actor.STAFF and actor.user is None)
    if trusted or (actor.role == Actor.STAFF and getattr(actor.user, "is_superuser", False)):
        return
    raise NotAllowed(_("Only superusers can do this to the database."))


def signal_refusal(target: dict[str, Any]) -> Any:
    """Why the session `target` (pg.session) may not be cancelled or terminated from here, or
    None: the confirmation page says it before anyone confirms, the service refuses it."""
    pid = target["pid"]
    if target["is_self"]:
        return _("This is your own session.")
    if target["backend_type"] not in SIGNALLABLE:
        return Text(
            gettext_noop(
                "Session %(pid)s is a %(type)s: only client sessions and autovacuum can be stopped here."
            ),
            pid=pid,
            type=target["backend_type"],
        )
    if not target["this_database"]:  # another application's, on a shared server
        return Text(
            gettext_noop(
                "Session %(pid)s is connected to database %(database)s: only this database's "
                "sessions can be stopped here."
            ),
            pid=pid,
            database=target["database"],
        )
    return None


def signal_if_same(cur: Any, function: str, target: dict[str, Any]) -> bool:
    """Signal the session `target` was read from, only if it is still that one: a process id the
    server gave to a new session since (the old one ended) is left alone, as is one that no longer
    meets the checks of signal_refusal. False: nothing was signalled."""
    cur.execute(
        f"SELECT {function}(pid) FROM pg_stat_activity "
        "WHERE pid = %s AND backend_start = %s AND pid <> pg_backend_pid() "
        "AND backend_type = ANY(%s) AND datname IS NOT DISTINCT FROM current_database()",
        [target["pid"], target["backend_start"], list(SIGNALLABLE)],
    )
    row = cur.fetchone()
    return bool(row and row[0])


def session_signal(*, pid: int, kind: str, actor: Actor) -> DatabaseAction:
    """Cancel the running query of backend `pid` (kind "cancel") or end its session ("terminate").

    Refused for the caller's own session, another database's sessions and anything but client
    backends and autovacuum workers (never a replication sender). The attempt and PostgreSQL's
    answer are logged as a DatabaseAction (an answer of false: the backend was already gone or
    its query ended)."""
    _require_superuser(actor)
    if kind not in (DatabaseAction.Kind.CANCEL, DatabaseAction.Kind.TERMINATE):
        raise InvalidInput(_("Unknown action."), field="kind")
    with pg.reads() as cur:
        target = pg.session(cur, pid)
    if not target:
        raise NotFound(Text(gettext_noop("No session with process id %(pid)s."), pid=pid))
    refusal = signal_refusal(target)
    if refusal is not None:
        raise NotAllowed(refusal)
    function = "pg_cancel_backend" if kind == DatabaseAction.Kind.CANCEL else "pg_terminate_backend"
    try:
        # A savepoint: a refusal must not spoil a caller's transaction.
        with transaction.atomic(), connection.cursor() as cur:
            succeeded = signal_if_same(cur, function, target)
    except DatabaseError as exc:
        # A role with pg_signal_backend but not superuser may not signal a superuser's session.
        if pg.sqlstate(exc) == pg.INSUFFICIENT_PRIVILEGE:
            raise NotAllowed(
                Text(
                    gettext_noop(
                        "The database role may not stop session %(pid)s: it belongs to a PostgreSQL "
                        "superuser or to a role it has no rights over."
                    ),
                    pid=pid,
                )
            ) from None
        raise NotAllowed(
            Text(gettext_noop("PostgreSQL refused: %(error)s"), error=str(exc).strip().splitlines()[0])
        ) from None
    action = DatabaseAction.objects.create(
        kind=kind,
        user=actor.user,
        pid=pid,
        # The action log is read by Operations: the query's values stay out (see pg.without_literals).
        target=f"{target['user']} / {target['application']} / {target['database']}: "
        f"{pg.without_literals(target['query'])}"[:2000],
        succeeded=succeeded,
    )
    log.warning("backend %s: %s by %s (%s)", pid, kind, actor, "done" if succeeded else "already gone")
    return action


def statements_reset(*, actor: Actor) -> DatabaseAction:
    """Reset pg_stat_statements (every statement's counters start again from zero), logged."""
    _require_superuser(actor)
    with pg.reads() as cur:
        available = pg.statements_status(cur)["available"]
    if not available:
        raise Conflict(_("pg_stat_statements is not available on this server."))
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_stat_statements_reset()")
    except DatabaseError as exc:
        raise NotAllowed(Text(gettext_noop("PostgreSQL refused: %(error)s"), error=str(exc))) from None
    action = DatabaseAction.objects.create(
        kind=DatabaseAction.Kind.RESET_STATEMENTS, user=actor.user, succeeded=True
    )
    log.warning("pg_stat_statements reset by %s", actor)
    return action
