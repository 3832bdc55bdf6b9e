"""The tracked base: soft delete + history, exercised through concrete test-only models."""

from __future__ import annotations

import pytest
from django.core import checks
from django.db import DataError, IntegrityError, connection, models, transaction
from django.test.utils import isolate_apps

from okada.core import actors
from okada.core.models import deleted_rows_index, live_unique
from okada.core.services import bulk_create_tracked, bulk_update_tracked, update_rows
from tests.testapp.models import Book, Shelf

pytestmark = pytest.mark.django_db


def make_shelf(code: str = "A1") -> Shelf:
    shelf = Shelf(code=code)
    shelf.save()
    return shelf


def test_default_manager_hides_deleted_rows_and_other_managers_show_them():
    live, gone = make_shelf("A"), make_shelf("B")
    gone.delete()

    assert list(Shelf.objects.all()) == [live]
    assert set(Shelf.all_objects.all()) == {live, gone}
    assert list(Shelf.deleted_objects.all()) == [gone]
    # The row is still in the table: nothing was lost.
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM testapp_shelf")
        assert cur.fetchone()[0] == 2


def test_soft_delete_and_restore_record_history_with_user_and_reason(django_user_model):
    staff = django_user_model.objects.create_user(username="ops")
    shelf = make_shelf()
    with actors.acting_as(user=staff, reason="duplicate shelf"):
        shelf.delete()
    shelf.refresh_from_db()
    with actors.acting_as(user=staff):
        shelf.restore(reason="was not a duplicate")

    history = list(shelf.history.order_by("history_date", "history_id"))
    assert [h.history_type for h in history] == ["+", "~", "~"]
    deleted_row, restored_row = history[1], history[2]
    assert deleted_row.deleted_at is not None
    assert deleted_row.history_user == staff
    assert deleted_row.history_change_reason == "duplicate shelf"
    assert restored_row.deleted_at is None
    assert restored_row.history_user == staff
    assert restored_row.history_change_reason == "was not a duplicate"
    assert Shelf.objects.filter(pk=shelf.pk).exists()


def test_soft_delete_without_reason_says_soft_delete():
    shelf = make_shelf()
    shelf.delete()
    assert shelf.history.latest().history_change_reason == "soft delete"


def test_queryset_delete_soft_deletes_each_row_with_history(django_user_model):
    staff = django_user_model.objects.create_user(username="ops")
    make_shelf("A"), make_shelf("B"), make_shelf("C")
    with actors.acting_as(user=staff, reason="closing aisle"):
        count, _ = Shelf.objects.filter(code__in=["A", "B"]).delete()

    assert count == 2
    assert set(Shelf.objects.values_list("code", flat=True)) == {"C"}
    for shelf in Shelf.deleted_objects.all():
        latest = shelf.history.latest()
        assert latest.deleted_at is not None
        assert latest.history_user == staff
        assert latest.history_change_reason == "closing aisle"


def test_plain_delete_never_hard_deletes_and_hard_delete_needs_explicit_call():
    from safedelete.config import HARD_DELETE

    shelf = make_shelf()
    with pytest.raises(ValueError, match="hard_delete"):
        shelf.delete(force_policy=HARD_DELETE)
    assert Shelf.objects.filter(pk=shelf.pk).exists()

    pk = shelf.pk
    shelf.hard_delete(reason="GDPR erasure")
    assert not Shelf.all_objects.filter(pk=pk).exists()
    last = Shelf.history.filter(id=pk).latest()
    assert last.history_type == "-"
    assert last.history_change_reason == "GDPR erasure"


def test_soft_delete_cascades_and_restore_brings_back_only_what_the_cascade_deleted():
    shelf = make_shelf()
    kept_deleted = Book(shelf=shelf, title="deleted earlier")
    kept_deleted.save()
    kept_deleted.delete()
    cascaded = Book(shelf=shelf, title="deleted with the shelf")
    cascaded.save()

    shelf.delete()
    assert not Book.objects.filter(shelf=shelf).exists()
    cascaded.refresh_from_db()
    assert cascaded.deleted_at is not None and cascaded.deleted_by_cascade

    shelf.refresh_from_db()
    shelf.restore()
    assert list(Book.objects.filter(shelf=shelf)) == [cascaded]
    assert Book.deleted_objects.filter(pk=kept_deleted.pk).exists()


def test_saving_a_deleted_object_does_not_restore_it():
    shelf = make_shelf()
    shelf.delete()
    shelf.label = "edited while deleted"
    shelf.save()
    shelf.refresh_from_db()
    assert shelf.deleted_at is not None
    assert not Shelf.objects.filter(pk=shelf.pk).exists()


def test_restore_of_a_live_row_is_refused():
    shelf = make_shelf()
    with pytest.raises(ValueError, match="not deleted"):
        shelf.restore()


def test_partial_unique_lets_a_deleted_row_be_recreated_but_not_two_live_ones():
    old = make_shelf("DUP")
    old.delete()
    make_shelf("DUP")  # allowed: the other is deleted
    with pytest.raises(IntegrityError), transaction.atomic():
        Shelf.objects.bulk_create([Shelf(code="DUP")])  # bypasses Python validation: the DB refuses


def test_restoring_into_a_taken_unique_slot_is_refused_by_the_database():
    old = make_shelf("X")
    old.delete()
    make_shelf("X")
    old.refresh_from_db()
    with pytest.raises(IntegrityError), transaction.atomic():
        old.restore()


@isolate_apps("tests.testapp")
def test_partial_unique_check_rejects_full_unique_rules_and_accepts_live_unique():
    from okada.core.checks import partial_unique_errors

    class BadField(models.Model):
        code = models.CharField(max_length=5, unique=True)

        class Meta:
            app_label = "testapp"

    class BadConstraint(models.Model):
        code = models.CharField(max_length=5)
        deleted_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "testapp"
            constraints = [models.UniqueConstraint(fields=["code"], name="bad_code")]

    class WrongCondition(models.Model):
        code = models.CharField(max_length=5)
        deleted_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "testapp"
            constraints = [
                models.UniqueConstraint(
                    fields=["code"], condition=models.Q(deleted_at__isnull=False), name="wrong_cond"
                )
            ]

    class Good(models.Model):
        code = models.CharField(max_length=5)
        deleted_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "testapp"
            constraints = [live_unique("code", name="good_code_live")]

    assert [e.id for e in partial_unique_errors(BadField)] == ["okada.E001"]
    assert [e.id for e in partial_unique_errors(BadConstraint)] == ["okada.E001"]
    assert [e.id for e in partial_unique_errors(WrongCondition)] == ["okada.E001"]
    assert all(isinstance(e, checks.Error) for e in partial_unique_errors(BadField))
    assert partial_unique_errors(Good) == []


@isolate_apps("tests.testapp")
def test_deleted_index_check_wants_a_partial_index_of_deleted_rows_only():
    from okada.core.checks import deleted_index_errors

    class FullIndex(models.Model):
        deleted_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "testapp"
            indexes = [models.Index(fields=["deleted_at"], name="full_deleted")]

    class LiveRowsIndex(models.Model):
        deleted_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "testapp"
            indexes = [
                models.Index(
                    fields=["deleted_at"], name="live_deleted", condition=models.Q(deleted_at__isnull=True)
                )
            ]

    class Good(models.Model):
        deleted_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "testapp"
            indexes = [deleted_rows_index("good_deleted")]

    assert [e.id for e in deleted_index_errors(FullIndex)] == ["okada.E002"]
    assert [e.id for e in deleted_index_errors(LiveRowsIndex)] == ["okada.E002"]
    assert deleted_index_errors(Good) == []


def test_the_database_indexes_the_deleted_rows_of_every_tracked_table_and_nothing_else_on_deleted_at():
    """The migrations made the partial index and dropped the full one (which every write paid)."""
    from django.apps import apps

    from okada.core.models import TrackedModel

    tables = [m._meta.db_table for m in apps.get_models() if issubclass(m, TrackedModel)]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexdef LIKE %s",
            [tables, "%(deleted_at)%"],
        )
        found = cur.fetchall()
    assert sorted(t for t, _ in found) == sorted(tables)
    assert all(d.endswith("WHERE (deleted_at IS NOT NULL)") for _, d in found), found


def test_installed_models_pass_the_partial_unique_check():
    from okada.core.checks import tracked_models_use_partial_unique

    assert tracked_models_use_partial_unique() == []


def test_bulk_helpers_write_history_with_actor(django_user_model):
    staff = django_user_model.objects.create_user(username="bulk")
    with actors.acting_as(user=staff, reason="import"):
        shelves = bulk_create_tracked(Shelf, [Shelf(code=f"S{i}") for i in range(5)])
    assert Shelf.history.filter(history_type="+").count() == 5
    assert set(Shelf.history.values_list("history_user_id", flat=True)) == {staff.pk}
    assert set(Shelf.history.values_list("history_change_reason", flat=True)) == {"import"}

    for s in shelves:
        s.label = "relabelled"
    with actors.acting_as(user=staff, reason="relabel"):
        assert bulk_update_tracked(Shelf, shelves, ["label"]) == 5
    changes = Shelf.history.filter(history_type="~")
    assert changes.count() == 5
    assert set(changes.values_list("label", flat=True)) == {"relabelled"}
    assert set(changes.values_list("history_change_reason", flat=True)) == {"relabel"}


def test_update_rows_refuses_a_text_too_long_for_its_column_as_an_update_does():
    # Its VALUES cast each value to its column's type: an explicit cast to varchar(100) cuts a
    # longer text to 100 characters without a word, where an UPDATE (and bulk_update) refuses it.
    shelves = bulk_create_tracked(Shelf, [Shelf(code="S1"), Shelf(code="S2")])
    shelves[0].label = "fits"
    shelves[1].label = "x" * 101
    with pytest.raises(DataError), transaction.atomic():
        update_rows(Shelf, shelves, ["label"])
    assert set(Shelf.objects.values_list("label", flat=True)) == {""}
    shelves[1].label = "y" * 100
    assert update_rows(Shelf, shelves, ["label"]) == 2
    assert dict(Shelf.objects.values_list("code", "label")) == {"S1": "fits", "S2": "y" * 100}


def test_history_user_comes_from_the_request(client, admin_user):
    shelf = make_shelf()
    client.force_login(admin_user)
    response = client.post(
        f"/admin/testapp/shelf/{shelf.pk}/delete/", {"post": "yes"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 302
    latest = Shelf.all_objects.get(pk=shelf.pk).history.latest()
    assert latest.deleted_at is not None
    assert latest.history_user == admin_user
    assert latest.history_change_reason == "deleted in admin"


def test_admin_restore_action_restores_and_filter_shows_deleted(client, admin_user):
    shelf = make_shelf("GONE")
    shelf.delete()
    client.force_login(admin_user)

    live_list = client.get("/admin/testapp/shelf/")
    assert "GONE" not in live_list.content.decode()
    deleted_list = client.get("/admin/testapp/shelf/?deleted=deleted")
    assert "GONE" in deleted_list.content.decode()

    response = client.post(
        "/admin/testapp/shelf/?deleted=deleted",
        {"action": "restore_selected", "_selected_action": [str(shelf.pk)]},
    )
    assert response.status_code == 302
    assert Shelf.objects.filter(pk=shelf.pk).exists()
    restored = Shelf.objects.get(pk=shelf.pk).history.latest()
    assert (restored.history_user, restored.history_change_reason) == (admin_user, "restored in admin")


def test_admin_history_view_shows_changes(client, admin_user):
    shelf = make_shelf()
    shelf.label = "new label"
    shelf.save()
    client.force_login(admin_user)
    response = client.get(f"/admin/testapp/shelf/{shelf.pk}/history/")
    assert response.status_code == 200
    assert "new label" in response.content.decode()


def test_the_models_the_contract_calls_tracked_are_tracked_with_a_history_table():
    """DESIGN.md section 3 names the tracked models: soft delete (deleted rows hidden by the
    default manager, kept in the table) and history. The tests above run on test-only models (and
    the partial-unique check on every TrackedModel); this one holds the domain models to that base."""
    from django.apps import apps

    from okada.core.models import TrackedModel

    contract = (
        "catalog.Vendor",
        "catalog.Category",
        "catalog.Product",
        "orders.Customer",
        "orders.Zone",
        "orders.Order",
    )
    for label in contract:
        model = apps.get_model(label)
        assert issubclass(model, TrackedModel), label
        assert model._default_manager.name == "objects" and model._meta.get_field("deleted_at").null, label
        history = model.history.model._meta.db_table
        with connection.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", [history])
            assert cur.fetchone()[0], history


def test_the_weekly_job_drops_history_rows_identical_to_the_one_before_and_keeps_every_change():
    """DESIGN.md section 6 "clean duplicate history weekly": the job (beat entry "Clean duplicate
    history") removes a history row that records no change, keeps the creation, every change and
    the soft delete, and writes its JobRun."""
    from okada.core.models import JobRun
    from okada.core.tasks import clean_duplicate_history

    shelf = make_shelf("C1")
    shelf.save()  # nothing changed: a duplicate
    shelf.save()
    shelf.label = "fruits"
    shelf.save()
    other = make_shelf("C2")
    other.delete()
    assert shelf.history.count() == 4 and Shelf.history.filter(id=other.pk).count() == 2

    clean_duplicate_history()

    assert [(h.history_type, h.label) for h in shelf.history.order_by("history_date")] == [
        ("+", ""),
        ("~", "fruits"),
    ]
    assert Shelf.history.filter(id=other.pk).count() == 2  # created, then soft-deleted: a change
    run = JobRun.objects.get(name="core.clean_duplicate_history")
    assert run.outcome == JobRun.Outcome.SUCCESS and run.summary == {"deleted": 2}


def test_the_weekly_job_keeps_the_soft_delete_restore_and_hard_delete_of_a_row():
    """Those history rows change only fields no form edits (`deleted_at`), or none (a hard
    delete records the row as it was): simple-history's duplicate check compares editable fields
    only, so the job took them for duplicates and erased who deleted and restored the row, and
    who deleted it for good (DESIGN.md section 3: history of every change, soft delete and
    restore included)."""
    from okada.core.tasks import clean_duplicate_history

    restored = make_shelf("R1")
    with actors.acting_as(reason="shelf emptied"):
        restored.delete()
    with actors.acting_as(reason="back in use"):
        restored.restore()
    gone = make_shelf("G1")
    gone.save()  # a duplicate: the only row the job may drop
    gone_id = gone.pk
    with actors.acting_as(reason="shelf removed"):
        gone.hard_delete()

    clean_duplicate_history()

    def kept(shelf_id):
        rows = Shelf.history.filter(id=shelf_id).order_by("history_date", "history_id")
        return [(h.history_type, h.history_change_reason) for h in rows]

    assert kept(restored.pk) == [("+", None), ("~", "shelf emptied"), ("~", "back in use")]
    assert kept(gone_id) == [("+", None), ("-", "shelf removed")]


def test_the_weekly_job_also_cleans_the_history_of_soft_deleted_rows():
    """A soft-deleted row keeps its history (it may be restored): its duplicates go too."""
    from okada.core.tasks import clean_duplicate_history

    shelf = make_shelf("D1")
    shelf.save()  # a duplicate, before the delete
    shelf.delete()
    assert [h.history_type for h in shelf.history.order_by("history_date")] == ["+", "~", "~"]

    clean_duplicate_history()

    kept = Shelf.history.filter(id=shelf.pk).order_by("history_date")
    assert [(h.history_type, h.deleted_at is not None) for h in kept] == [("+", False), ("~", True)]


def test_the_weekly_job_keeps_a_zones_soft_delete_and_restore_done_by_staff():
    """The same on a domain model with no version column (vendors, categories, customers, zones):
    who deleted the zone and who brought it back, and why, stay in its history."""
    from okada.core.tasks import clean_duplicate_history
    from orders.services import zone_restore, zone_soft_delete
    from tests.catalog.factories import staff_actor
    from tests.orders.factories import ZoneFactory

    zone = ZoneFactory(name="Bonapriso")
    zone_soft_delete(zone=zone, actor=staff_actor(), reason="merged into Akwa")
    zone_restore(zone=zone, actor=staff_actor(), reason="split again")

    clean_duplicate_history()

    reasons = [h.history_change_reason for h in zone.history.order_by("history_date", "history_id")]
    assert reasons[-2:] == ["merged into Akwa", "split again"]


def test_the_weekly_job_keeps_a_change_back_stamped_by_a_server_whose_clock_is_behind():
    """History rows are stamped with their web server's clock: a change written after another
    may carry an earlier history_date. Compared in date order, the change back to the first
    label ("" -> "x" -> "") looked like a copy of the creation and was deleted, leaving the
    history saying the shelf is labelled "x"."""
    from datetime import timedelta

    from okada.core.tasks import clean_duplicate_history

    shelf = make_shelf("K1")
    shelf.label = "x"
    shelf.save()
    shelf.label = ""
    shelf.save()
    rows = list(shelf.history.order_by("history_id"))
    # Made a minute ago; the last change came from a server 1 s behind the one before it.
    Shelf.history.filter(history_id=rows[0].history_id).update(
        history_date=rows[1].history_date - timedelta(minutes=1)
    )
    Shelf.history.filter(history_id=rows[2].history_id).update(
        history_date=rows[1].history_date - timedelta(seconds=1)
    )

    clean_duplicate_history()

    kept = [h.label for h in shelf.history.order_by("history_id")]
    assert kept == ["", "x", ""]
