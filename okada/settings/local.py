"""Developer machine: `make run`."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="okada-local-development-key-not-for-production-use-0123456789")
# runserver and a local gunicorn serve the apps' static files without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# /metrics answers a Prometheus on this machine without a token.
OKADA_METRICS_ALLOWED_IPS = env.networks("OKADA_METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
