"""The Celery application: broker and settings come from Django settings (CELERY_*)."""

import os

from celery import Celery

# Like wsgi.py: workers and beat started without DJANGO_SETTINGS_MODULE get production settings
# and fail closed. `make run` sets the local settings in okada/Procfile.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.production")

app = Celery("okada")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
