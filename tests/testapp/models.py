"""Concrete tracked models used only by the tests of okada.core (installed by test settings)."""

from django.db import models

from okada.core.models import BaseModel, TrackedModel, deleted_rows_index, live_unique


class Shelf(TrackedModel):
    code = models.CharField(max_length=20, db_comment="Shelf code, unique among live shelves.")
    label = models.CharField(max_length=100, blank=True, default="", db_comment="Label.")

    class Meta:
        db_table_comment = "Test-only tracked parent."
        constraints = [live_unique("code", name="testapp_shelf_code_live_uniq")]
        indexes = [deleted_rows_index("testapp_shelf_deleted")]

    def __str__(self) -> str:
        return self.code


class Book(TrackedModel):
    shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE, related_name="books", db_comment="Shelf.")
    title = models.CharField(max_length=100, db_comment="Title.")

    class Meta:
        db_table_comment = "Test-only tracked child (cascade)."
        indexes = [deleted_rows_index("testapp_book_deleted")]

    def __str__(self) -> str:
        return self.title


class Page(BaseModel):
    """Two cascades down from a shelf (shelf -> book -> page): what a hard delete's recount must
    hold still (okada.core.deletion.hard_delete_summary with lock)."""

    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="pages", db_comment="Book.")
    number = models.PositiveIntegerField(db_comment="Page number.")

    class Meta:
        db_table_comment = "Test-only grandchild (cascade of a cascade)."

    def __str__(self) -> str:
        return f"{self.book} p. {self.number}"
