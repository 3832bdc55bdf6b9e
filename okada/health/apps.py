from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HealthConfig(AppConfig):
    name = "okada.health"
    label = "health"
    verbose_name = _("Database health")

    def ready(self) -> None:
        from okada.core import health_registry

        from . import conditions, dashboard, marketplace, metrics

        conditions.register()  # the database's, jobs', partitions' and queue's alert conditions
        marketplace.register()  # jobs, partitions and the Celery queue beside the database
        metrics.install()  # Okada's gauges on the Prometheus registry
        health_registry.autodiscover()  # each app's health.py: its panels, conditions and metrics
        dashboard.register()  # open alerts on the admin's home
