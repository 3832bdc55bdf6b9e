from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "okada.core"
    label = "core"
    verbose_name = _("Operations")

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .api import schema  # noqa: F401  (registers the OpenAPI security schemes)
        from .dashboard import register_core_panels
        from .logs import connect_celery

        register_core_panels()
        connect_celery()  # task id and name on every line a task logs
