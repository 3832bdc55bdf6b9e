"""okada.core.deletion: the hard delete's recount holds still what it counted, at any depth."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from okada.core.actors import Actor
from okada.core.deletion import hard_delete_summary
from okada.core.services import tracked_hard_delete
from tests.concurrency import a_lock_is_awaited, in_thread, poll
from tests.testapp.models import Book, Page, Shelf


@pytest.mark.django_db(transaction=True)
def test_a_row_added_two_cascades_down_after_the_recount_waits_and_is_never_deleted_unseen():
    """The confirmation locked only the selected shelf: a page added to one of its books (its
    foreign-key check locks the book, not the shelf) committed between the count and the delete,
    and the delete took it without the page having said so. Now the book is locked too: the
    page's commit waits for the delete, then fails, and what was counted is what went."""
    shelf = Shelf.objects.create(code="A1")
    book = Book.objects.create(shelf=shelf, title="Contes")
    Page.objects.create(book=book, number=1)

    def add_page() -> None:
        with transaction.atomic():
            Page.objects.create(book_id=book.pk, number=2)  # its FK check runs at commit (deferred)

    with transaction.atomic():
        summary = hard_delete_summary(Shelf, [shelf.pk], lock=True)
        counted = {part.model: part.count for part in summary.deleted}
        assert counted == {Shelf: 1, Book: 1, Page: 1}
        adder, errors = in_thread(add_page)
        poll(lambda: a_lock_is_awaited() or not adder.is_alive(), "the new page to wait or to end")
        assert adder.is_alive(), "the page was added under a book being deleted, without waiting"
        tracked_hard_delete(obj=Shelf.all_objects.get(pk=shelf.pk), actor=Actor.system("test"))
    adder.join(30)
    assert not adder.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], IntegrityError), errors
    assert not Page.objects.exists() and not Book.all_objects.exists()
