"""pytest: the same PostgreSQL and Redis kinds as production, isolated from `make run` data."""

from .base import *  # noqa: F403
from .base import CACHES, INSTALLED_APPS, REDIS_URL, env

SECRET_KEY = env("SECRET_KEY", default="okada-test-key-0123456789-0123456789-0123456789-0123")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only

# A Redis database of its own, so a running `make run` worker never picks up test tasks.
_TEST_REDIS = env("TEST_REDIS_URL", default=REDIS_URL.rsplit("/", 1)[0] + "/15")
CACHES["default"]["LOCATION"] = _TEST_REDIS
CACHES["default"]["KEY_PREFIX"] = "okada-test"
CELERY_BROKER_URL = _TEST_REDIS
CELERY_RESULT_BACKEND = _TEST_REDIS
OKADA_API_RATELIMIT_REDIS_URL = _TEST_REDIS

# A concrete tracked model used to test the shared base.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

# Far above what one test sends; tests of the limits set their own (override_settings).
OKADA_API_RATE_LIMIT = "100000/minute"
OKADA_API_ANON_RATE_LIMIT = "100000/minute"
OKADA_PAYMENT_CALLBACK_SECRETS = {"mtn_momo": "test-mtn-secret", "orange_money": "test-orange-secret"}
# Static files from the apps' folders (no collectstatic in tests).
STATIC_ROOT = None  # type: ignore[assignment]  # whitenoise then skips it
WHITENOISE_USE_FINDERS = True
