# What each staff role may do with orders (okada.core.roles), and the daily pruning of exports.
from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.roles import FINANCE, OPERATIONS, SUPPORT, grant_operation
from okada.core.schedules import Schedule, install, uninstall

READ = [
    "orders.view_order",
    "orders.view_orderitem",
    "orders.view_orderevent",
    "orders.view_payment",
    "orders.view_customer",
    "orders.view_zone",
]
SCHEDULES = [
    Schedule(
        name=gettext_noop("Prune order exports"),
        task="orders.prune_exports",
        minute="30",
        hour="4",
        description=gettext_noop("CSV exports older than OKADA_EXPORT_RETENTION_DAYS are deleted (rows and files)."),
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0013_admin_indexes"),
        ("core", "0006_roles"),
    ]

    operations = [
        grant_operation(
            {
                OPERATIONS: [
                    *READ,
                    *[f"orders.{verb}_{m}" for m in ("customer", "zone") for verb in ("add", "change", "delete")],
                    "orders.change_order",
                    "orders.delete_order",
                    "orders.transition_order",
                    "orders.add_order_note",
                    "orders.export_orders",
                ],
                SUPPORT: [*READ, "orders.add_order_note"],
                FINANCE: [*READ, "orders.add_payment", "orders.refund_order", "orders.add_order_note", "orders.export_orders"],
            }
        ),
        migrations.RunPython(lambda apps, se: install(apps, SCHEDULES), lambda apps, se: uninstall(apps, SCHEDULES)),
    ]
