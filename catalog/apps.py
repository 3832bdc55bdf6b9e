from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = _("Catalog")

    def ready(self) -> None:
        from . import account_powers, dashboard

        dashboard.register()
        account_powers.register()  # a member's account is left to who could become a member
