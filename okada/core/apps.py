from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "okada.core"
    label = "core"
    verbose_name = _("Operations")

    def ready(self) -> None:
        from django.contrib import admin
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401  (registers the system checks)
        from .admin_login import LockOutAdminLoginForm
        from .api import schema  # noqa: F401  (registers the OpenAPI security schemes)
        from .dashboard import register_core_panels
        from .db import set_server_keepalive
        from .logs import connect_celery
        from .schedule_names import name_beat_models

        admin.site.login_form = LockOutAdminLoginForm  # brute force: okada.core.login_guard
        connection_created.connect(set_server_keepalive, dispatch_uid="okada.server_keepalive")

        register_core_panels()
        connect_celery()  # task id and name on every line a task logs
        name_beat_models()  # beat's crontabs and schedules named in the reader's language
