from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = _("Backups")

    def ready(self) -> None:
        # The core's /readyz knows nothing of backups: the app adds its check (DESIGN.md 4).
        from okada.core.health import READINESS_CHECKS

        from .selectors import backup_readiness

        READINESS_CHECKS["backup"] = backup_readiness

        from . import dashboard

        dashboard.register()
