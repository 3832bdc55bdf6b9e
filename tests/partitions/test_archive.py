"""Archives: pg_dump of one table, its SHA-256, and the read-back that counts its rows."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from django.db import connection, connections

from okada.core.db import libpq_env
from okada.partitions import archive
from tests.backups.helpers import pg_dump_waits_for_a_lock, table_locked
from tests.concurrency import WAIT, database_url, in_thread, poll
from tests.filesystems import traced_calls
from tests.partitions.conftest import at, insert_readings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def plain_table():
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE test_archive_me (id uuid PRIMARY KEY, created_at timestamptz NOT NULL, "
            "value integer NOT NULL, note text NOT NULL DEFAULT '')"
        )
    yield "test_archive_me"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS test_archive_me")


def test_a_dump_reads_back_with_every_row_and_its_digest(plain_table, tmp_path):
    insert_readings(plain_table, [at(2030, 1, d) for d in range(1, 8)])
    made = archive.dump_table(
        plain_table, schema="public", directory=tmp_path / "a", stamp="S", lock_wait_ms=1000
    )
    assert made.path == tmp_path / "a" / "test_archive_me-S.dump"
    assert made.rows == 7  # values with line breaks and tabs count as one row each
    assert made.sha256 == archive.sha256_of(made.path) and made.bytes == made.path.stat().st_size
    assert not list((tmp_path / "a").glob("*.partial"))
    archive.verify_archive(made, name=plain_table, schema="public", expected_rows=7)
    with pytest.raises(archive.ArchiveError, match="holds 7 rows"):
        archive.verify_archive(made, name=plain_table, schema="public", expected_rows=8)


def test_archives_are_owner_only_like_the_backups_beside_them(plain_table, tmp_path):
    # The backup directory holds every customer's data: mode 0700, files 0600 (README "Backups"),
    # even when a partition archive is the first thing written there.
    insert_readings(plain_table, [at(2030, 1, 1)])
    backups = tmp_path / "backups"
    previous = os.umask(0o022)  # the usual umask: a file pg_dump creates itself would be 0644
    try:
        made = archive.dump_table(
            plain_table,
            schema="public",
            directory=backups / "partitions" / plain_table,
            stamp="S",
            lock_wait_ms=1000,
        )
    finally:
        os.umask(previous)
    for directory in (backups, backups / "partitions", made.path.parent):
        assert oct(directory.stat().st_mode & 0o777) == "0o700", directory
    for path in (made.path, made.path.with_name(made.path.name + ".sha256")):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path


def test_a_changed_or_truncated_archive_is_refused(plain_table, tmp_path):
    insert_readings(plain_table, [at(2030, 1, 1)])
    made = archive.dump_table(plain_table, schema="public", directory=tmp_path, stamp="S", lock_wait_ms=1000)
    with made.path.open("r+b") as f:
        f.truncate(made.bytes // 2)
    with pytest.raises(archive.ArchiveError):
        archive.verify_archive(made, name=plain_table, schema="public", expected_rows=1)
    with pytest.raises(archive.ArchiveError):
        archive.archived_rows(made.path, name=plain_table, schema="public")


def test_the_password_reaches_pg_dump_through_its_environment_only(monkeypatch):
    settings_dict = connections["default"].settings_dict
    monkeypatch.setitem(settings_dict, "PASSWORD", "s3cret")
    monkeypatch.setenv("PGPASSWORD", "stale")
    env = libpq_env()
    assert env["PGPASSWORD"] == "s3cret"
    assert env["PGDATABASE"] == settings_dict["NAME"]
    assert os.environ["PGPASSWORD"] == "stale"  # our own environment is left alone


def test_pg_dump_connects_with_every_libpq_option_of_the_settings_as_the_backups_do(
    plain_table, tmp_path, monkeypatch
):
    # The archive's pg_dump gets the same environment as the backups' (okada.core.db.libpq_env),
    # so a libpq option of DATABASE_URL reaches it: here one the server refuses, to see it arrive.
    # (The test's own connection is open already: it keeps the settings it was made with.)
    settings_dict = connections["default"].settings_dict
    options = {**settings_dict.get("OPTIONS", {}), "options": "-c default_transaction_isolation=nonsense"}
    monkeypatch.setitem(settings_dict, "OPTIONS", options)
    with pytest.raises(archive.ArchiveError, match="default_transaction_isolation"):
        archive.dump_table(plain_table, schema="public", directory=tmp_path, stamp="S", lock_wait_ms=1000)


def test_the_partial_file_of_a_dump_in_progress_is_never_removed_as_stale(plain_table, tmp_path):
    # pg_dump waits for a lock another session holds: its .partial exists and is being written.
    insert_readings(plain_table, [at(2030, 1, 1), at(2030, 1, 2)])
    made: list[archive.Archive] = []
    with table_locked(plain_table):
        thread, errors = in_thread(
            lambda: made.append(
                archive.dump_table(
                    plain_table, schema="public", directory=tmp_path, stamp="S", lock_wait_ms=WAIT * 1000
                )
            )
        )
        poll(pg_dump_waits_for_a_lock, "pg_dump to wait for the table's lock")
        partial = tmp_path / "test_archive_me-S.dump.partial"
        assert partial.exists()

        assert archive.remove_stale_partials(tmp_path, plain_table) == []
        with pytest.raises(archive.ArchiveError, match="being written by another run"):
            archive.dump_table(plain_table, schema="public", directory=tmp_path, stamp="S", lock_wait_ms=1)
        assert partial.exists()
    thread.join(WAIT)
    assert not errors and made[0].rows == 2 and not partial.exists()


def table_oid(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)::oid", [name])
        return cursor.fetchone()[0]


def test_an_archive_is_reused_only_when_its_checksum_table_and_rows_all_check_out(plain_table, tmp_path):
    insert_readings(plain_table, [at(2030, 1, 1), at(2030, 1, 2)])
    made = archive.dump_table(plain_table, schema="public", directory=tmp_path, stamp="A", lock_wait_ms=1000)
    oid = table_oid(plain_table)

    def found(**changes: int) -> archive.Archive | None:
        given = {"table_oid": oid, "expected_rows": 2, **changes}
        return archive.written_archive(plain_table, schema="public", directory=tmp_path, **given)

    assert found() == made
    assert found(expected_rows=3) is None  # rows came or went since
    assert found(table_oid=oid + 1) is None  # another table of that name (made again since)
    checksum = made.path.with_name(made.path.name + ".sha256")
    checksum.write_text(checksum.read_text().replace(made.sha256[:8], "00000000"))
    assert found() is None  # not the file that was written
    checksum.unlink()
    assert found() is None  # a run killed before it wrote the digest


def test_a_digest_left_without_its_archive_is_never_overwritten(plain_table, tmp_path):
    # A run stopped between the digest and the archive's rename leaves a `.sha256` alone: the
    # next archive of that name goes beside it (`-2`), never writes into it.
    insert_readings(plain_table, [at(2030, 1, 1)])
    left = tmp_path / "test_archive_me-S.dump.sha256"
    left.write_text("0" * 64 + "  test_archive_me-S.dump\n")

    made = archive.dump_table(plain_table, schema="public", directory=tmp_path, stamp="S", lock_wait_ms=1000)

    assert made.path.name == "test_archive_me-S-2.dump"
    assert left.read_text() == "0" * 64 + "  test_archive_me-S.dump\n"
    assert archive.checksum_path(made.path).read_text() == f"{made.sha256}  {made.path.name}\n"


DUMP_ONE_TABLE = """
import sys
from pathlib import Path

import django

django.setup()
from okada.partitions import archive

archive.dump_table(sys.argv[1], schema="public", directory=Path(sys.argv[2]), stamp="S", lock_wait_ms=1000)
"""


def test_an_archive_and_its_digest_are_on_disk_before_dump_table_returns(plain_table, tmp_path):
    # The caller drops the table next: the archive is then the month's only copy. Its data, its
    # digest and both names must have reached the disk (fsync of each file, then of the
    # directory once the names are in place): a power cut after the DROP loses nothing.
    insert_readings(plain_table, [at(2030, 1, 1)])
    directory = tmp_path / "archives"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "okada.settings.test", "DATABASE_URL": database_url()}

    calls = traced_calls(
        [sys.executable, "-c", DUMP_ONE_TABLE, plain_table, str(directory)],
        env=env,
        cwd=root,
        log=tmp_path / "strace.log",
    )

    final = directory / "test_archive_me-S.dump"
    partial, checksum = f"{final}.partial", f"{final}.sha256"
    order = [c for c in calls if c[1] in (str(final), partial, checksum, str(directory), str(tmp_path))]
    assert order == [
        ("fsync", str(tmp_path)),  # the name of the directory it made
        ("fsync", partial),  # the data
        ("fsync", checksum),  # the digest, under its name before the archive takes its own
        ("link", str(final)),
        ("unlink", partial),
        ("fsync", str(directory)),  # the names
    ]
    assert archive.checksum_path(final).read_text() == f"{archive.sha256_of(final)}  {final.name}\n"
