"""Backup catalog rows for tests of retention, readiness and the admin (no pg_dump behind them).

Tests that need a real dump call `backups.services.backup_run`.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import factory
from django.utils import timezone

from backups.models import Backup, BackupKind, BackupStatus, BackupVerification, VerificationOutcome

CONTENT = b"PGDM"  # a file's first bytes: what `with_file` writes


class BackupFactory(factory.django.DjangoModelFactory[Backup]):
    """A complete backup row; `with_file=True` also writes a small file under OKADA_BACKUP_DIR."""

    class Meta:
        model = Backup
        skip_postgeneration_save = True

    kind = BackupKind.SCHEDULED
    status = BackupStatus.COMPLETE
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyAttribute(
        lambda o: None if o.status == BackupStatus.RUNNING else o.started_at + timedelta(minutes=2)
    )
    file_name = factory.Sequence(lambda n: f"okada-test-{n:05d}.dump")
    size_bytes = len(CONTENT)
    sha256 = hashlib.sha256(CONTENT).hexdigest()  # of the file `with_file` writes

    @factory.post_generation
    def with_file(obj: Backup, create: bool, extracted: object, **kwargs: object) -> None:
        if extracted:
            from backups.services import backup_dir

            (backup_dir() / obj.file_name).write_bytes(CONTENT)


class BackupVerificationFactory(factory.django.DjangoModelFactory[BackupVerification]):
    class Meta:
        model = BackupVerification

    backup = factory.SubFactory(BackupFactory)
    started_at = factory.LazyAttribute(lambda o: o.backup.finished_at + timedelta(hours=2))
    finished_at = factory.LazyAttribute(lambda o: o.started_at + timedelta(minutes=1))
    outcome = VerificationOutcome.PASSED
    restore_seconds = 12.5
    error = factory.LazyAttribute(
        lambda o: "" if o.outcome == VerificationOutcome.PASSED else "checksum mismatch"
    )
