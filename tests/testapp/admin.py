from typing import Any

from django.contrib import admin

from okada.core.admin import TrackedAdmin, staff_actor

from . import services
from .models import Book, Shelf


class TestTrackedAdmin(TrackedAdmin):
    def delete_object(self, request: Any, obj: Any) -> None:
        services.tracked_delete(obj=obj, actor=staff_actor(request))

    def restore_object(self, request: Any, obj: Any) -> None:
        services.tracked_restore(obj=obj, actor=staff_actor(request))


@admin.register(Shelf)
class ShelfAdmin(TestTrackedAdmin):
    list_display = ("code", "label", "deleted_at")
    search_fields = ("code",)
    revert_fields = ("label",)

    def create_object(self, request: Any, form: Any) -> Shelf:
        return services.shelf_create(actor=staff_actor(request), **self.form_data(form, ("code", "label")))

    def update_object(self, request: Any, obj: Shelf, form: Any) -> Shelf:
        data = self.form_data(form, ("code", "label"))
        return services.shelf_update(shelf=obj, data=data, actor=staff_actor(request))


@admin.register(Book)
class BookAdmin(TestTrackedAdmin):
    list_display = ("title", "shelf")
