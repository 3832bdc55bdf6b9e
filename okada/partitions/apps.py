from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartitionsConfig(AppConfig):
    name = "okada.partitions"
    label = "partitions"
    verbose_name = _("Partitions")

    def ready(self) -> None:
        from . import checks, registry  # noqa: F401  (checks registers the system checks)

        # Each app declares its tables' policies in its own partitions.py.
        registry.autodiscover()
