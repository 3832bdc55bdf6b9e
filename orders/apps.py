from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("Orders")

    def ready(self) -> None:
        from catalog.selectors import movement_reference_finders

        from . import dashboard, selectors

        dashboard.register()
        # The ledger's search finds an order's movements by its number (the catalog imports no
        # orders code); once, however often ready() runs.
        if selectors.order_stock_movements not in movement_reference_finders:
            movement_reference_finders.append(selectors.order_stock_movements)
