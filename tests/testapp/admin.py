from django.contrib import admin

from okada.core.admin import TrackedAdmin

from .models import Book, Shelf


@admin.register(Shelf)
class ShelfAdmin(TrackedAdmin):
    list_display = ("code", "label", "deleted_at")
    search_fields = ("code",)


@admin.register(Book)
class BookAdmin(TrackedAdmin):
    list_display = ("title", "shelf")
