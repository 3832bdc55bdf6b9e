"""Production: everything secret or host-specific comes from the environment."""

from .base import *  # noqa: F403
from .base import STORAGES, env, logs

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# --- Security ----------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Load balancers probe over plain HTTP inside the network: never redirect the probes.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Serving: gunicorn + whitenoise (okada/gunicorn.conf.py, `make serve`) ----------------------
# Hashed, pre-compressed static files (collectstatic), served by whitenoise from the web process.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Logs --------------------------------------------------------------------------------------
# One JSON object per line (see okada.core.logs).
OKADA_LOG_FORMAT = env("OKADA_LOG_FORMAT", default="json")
LOGGING = logs.logging_config(OKADA_LOG_FORMAT)
