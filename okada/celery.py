"""The Celery application: broker and settings come from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.local")

app = Celery("okada")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
