from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """Demo data (`manage.py seed_demo`). It may import the domains; nothing imports it."""

    name = "okada.demo"
    label = "demo"
    verbose_name = _("Demo data")
