"""Settings shared by every environment; values come from the environment (django-environ)."""

import builtins
import ipaddress
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static

from okada.core import logs

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class _Env(environ.Env):
    """django-environ, but a value it cannot read (`36h` for a number, `36` for `table=months`)
    is an error naming the variable, not a bare ValueError that names none."""

    def get_value(
        self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET, parse_default: bool = False
    ) -> Any:
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{var}={self.ENVIRON.get(var, '')!r} cannot be read: {exc}") from None

    def int(self, var: str, default: Any = environ.Env.NOTSET, *, minimum: int = 0) -> int:
        """Every number setting here is a count, a size or a duration: one below `minimum` is
        refused, naming it. Negative ones everywhere (`OKADA_BACKUP_KEEP_DAILY=-1` kept no daily
        backup at all); 0 too where it would mean "no limit" (a PostgreSQL timeout) or nothing."""
        return int(self._at_least(var, super().int(var, default=default), minimum))

    def float(
        self, var: str, default: Any = environ.Env.NOTSET, *, minimum: builtins.float = 0
    ) -> builtins.float:
        return builtins.float(self._at_least(var, super().float(var, default=default), minimum))

    def percent(self, var: str, default: builtins.float) -> builtins.float:
        """A share of 100: one above it could never be reached (an alert that never opens)."""
        value = self.float(var, default=default)
        if value > 100:
            raise ImproperlyConfigured(f"{var}={self.ENVIRON.get(var, '')!r} must be 100 or less")
        return value

    def list(self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET) -> builtins.list[Any]:
        """Comma-separated, read as people write lists (`okada.cm, www.okada.cm`) and as gunicorn
        reads FORWARDED_ALLOW_IPS: spaces around an item ignored, empty items dropped.
        django-environ kept " www.okada.cm", a host no request names (each one a 400)."""
        return [
            item.strip() if isinstance(item, str) else item
            for item in super().list(var, cast=cast, default=default)
            if not (isinstance(item, str) and not item.strip())
        ]

    def dict(self, var: str, cast: Any = dict, default: Any = environ.Env.NOTSET) -> builtins.dict[Any, Any]:
        """`key=value` pairs, comma-separated, spaces around keys and values ignored (`a=1, b=2`)."""
        return {
            key.strip() if isinstance(key, str) else key: value.strip() if isinstance(value, str) else value
            for key, value in super().dict(var, cast=cast, default=default).items()
        }

    def networks(self, var: str, default: builtins.list[str]) -> builtins.list[str]:
        """Addresses or networks (`10.0.0.0/8`), comma-separated: one that is neither is refused
        (it would match nobody, silently)."""
        value = self.list(var, default=default)
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ImproperlyConfigured(
                    f"{var}={self.ENVIRON.get(var, '')!r}: {entry!r} is not an address or network"
                ) from None
        return value

    def _at_least(self, var: str, value: Any, minimum: builtins.float) -> Any:
        if value < minimum:
            raise ImproperlyConfigured(f"{var}={self.ENVIRON.get(var, '')!r} must be {minimum} or more")
        return value


env = _Env()
# Where `make up` wrote the private services' URLs. Real environment variables win.
env.read_env(BASE_DIR / "var" / "services.env", overwrite=False)

# --- General -----------------------------------------------------------------------------------
SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
ROOT_URLCONF = "okada.urls"
# The reverse proxies in front of Okada, whose X-Forwarded-For names the client (okada.core.clients:
# rate limits, login lockouts and /metrics' allowlist judge that client). The variable gunicorn
# reads for the same proxies (okada/gunicorn.conf.py), so both are set at once; `*` trusts every peer.
OKADA_TRUSTED_PROXIES = (
    ["0.0.0.0/0", "::/0"]
    if env("FORWARDED_ALLOW_IPS", default="").strip() == "*"
    else env.networks("FORWARDED_ALLOW_IPS", default=["127.0.0.1", "::1"])
)
WSGI_APPLICATION = "okada.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Internationalisation ----------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
# Ours first; then French for libraries that ship none (django-unfold, kept by `make messages`)
# or ship a French we correct (Django REST framework's, kept by hand: see its django.po).
LOCALE_PATHS = [
    BASE_DIR / "locale",
    BASE_DIR / "locale" / "vendor" / "rest_framework",
    BASE_DIR / "locale" / "vendor" / "unfold",
]
TIME_ZONE = "Africa/Douala"
USE_I18N = True
USE_TZ = True


# --- Databases ---------------------------------------------------------------------------------
def _database(database: dict[str, Any]) -> dict[str, Any]:
    """A database of DATABASES (as env.db reads its URL) with the settings every one of ours has."""
    # Django's PostgreSQL backend, with django-prometheus counting connections, queries and errors,
    # and a health check of kept connections that skips `SELECT 1` when the socket is quiet.
    database["ENGINE"] = "okada.core.postgresql"
    database["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    database["CONN_HEALTH_CHECKS"] = True
    database["ATOMIC_REQUESTS"] = False
    # psycopg prepares a statement only when asked to (okada.core.db.one_value, the hot paths).
    # Django's default (None) would refuse even that; an unreachable threshold keeps every other
    # query unprepared, as Django's client-side binding expects.
    database.setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1
    # libpq's side of the TCP keepalives (PostgreSQL's side: okada.core.db.SERVER_KEEPALIVE). A
    # database host that vanishes (a failover, a network cut) sends nothing more, and a web or
    # worker process waiting on its query would wait for the kernel's default, 2 hours + 9
    # probes; with these the connection is dropped about a minute after the host went quiet,
    # while it waits for a result (an error, not a hang; a send that is never acknowledged is
    # bounded by the kernel's retransmission timeout instead, as there is no tcp_user_timeout
    # here). Probes are answered by a live host's kernel, so a long query is never cut. The job
    # lock's connection adds tcp_user_timeout (okada.core.jobs.KEEPALIVE).
    # Defaults only: values given in the URL (`?keepalives_idle=60`) are the operator's and stay.
    for key, value in {
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }.items():
        database["OPTIONS"].setdefault(key, value)
    return database


DATABASES = {"default": _database(env.db("DATABASE_URL", default="postgres://okada@127.0.0.1:55432/okada"))}
# A streaming standby of the primary, for long reads that may lag (okada.core.db_router). In
# tests it is the test database itself (no second database is made).
if env("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = {**_database(env.db("DATABASE_REPLICA_URL")), "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ["okada.core.db_router.PrimaryRouter"]

# --- Redis: cache, sessions, Celery broker ----------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:56379/0")
CACHES = {
    "default": {
        # django-redis, with django-prometheus counting hits and misses
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
        "KEY_PREFIX": "okada",
    }
}
# Sessions read from Redis and are kept in PostgreSQL: a Redis restart logs nobody out.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- Applications ------------------------------------------------------------------------------
DJANGO_APPS = [
    # django-unfold (the admin theme) overrides admin templates: before django.contrib.admin.
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.simple_history",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "simple_history",
    "safedelete",
    "django_prometheus",
]
LOCAL_APPS = [
    "okada.core",
    "okada.partitions",
    "okada.health",
    "catalog",
    "orders",
    "sync",
    "okada.demo",
    "okada.credentials",
    "backups",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    # First and last: request counts and latencies for /metrics (django-prometheus).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Then every log line and every response (errors included) carries the request id, and every
    # line of a request (the access log too) its user or API credential and vendor.
    "okada.core.logs.RequestIDMiddleware",  # django-log-request-id's, refusing odd ids
    "okada.core.logs.RequestContextMiddleware",
    "okada.core.api.middleware.AccessLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "okada.core.api.middleware.JsonGZipMiddleware",
    # Sessions, the signed-in user and messages: Django's, skipped by /api/v1/ requests (the API
    # authenticates by itself, okada.core.middleware).
    "okada.core.middleware.BrowserSessionMiddleware",
    "okada.core.middleware.LocaleMiddleware",  # the admin: French unless English was chosen
    "okada.core.middleware.AdminRefusesNul",  # a NUL in an admin request: 400, in its language
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "okada.core.middleware.BrowserAuthenticationMiddleware",
    "okada.core.middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication: history rows written during a request name request.user.
    "simple_history.middleware.HistoryRequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# A refused CSRF check: the 403 page saying what to do (admin layout, user's language), under
# /api/ problem+json, instead of Django's bare English page.
CSRF_FAILURE_VIEW = "okada.core.api.problems.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "okada.health.context_processors.open_alerts",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Refuses nothing: a saved new password revokes the user's personal API tokens.
    {"NAME": "okada.credentials.passwords.RevokeTokensOnPasswordChange"},
]

# --- Static files ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# whitenoise serves them from the WSGI process (gunicorn): no separate file server needed.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Admin (django-unfold) ---------------------------------------------------------------------
# unfold's login form sends no `next`: without this a login at /admin/login/ ends on a 404.
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"
UNFOLD = {
    "SITE_TITLE": "Okada",
    "SITE_HEADER": "Okada",
    "SITE_SYMBOL": "local_shipping",
    # No "View site" link: Okada serves no site at "/" (unfold's default), only the admin and API.
    "SITE_URL": None,
    "SHOW_LANGUAGES": True,
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "DASHBOARD_CALLBACK": "okada.core.dashboard.dashboard_callback",
    "STYLES": [lambda request: static("okada/admin.css"), lambda request: static("health/health.css")],
    # Declared, so browsers do not ask for /favicon.ico (a 404) on every page.
    "SITE_FAVICONS": [
        {"rel": "icon", "type": "image/svg+xml", "href": lambda request: static("okada/favicon.svg")}
    ],
    "SIDEBAR": {"show_search": True, "show_all_applications": True},
}

# --- Soft delete + history ---------------------------------------------------------------------
SAFE_DELETE_FIELD_NAME = "deleted_at"
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
# History dates get a BRIN index instead of a btree (okada.core.models.TrackedHistory).
SIMPLE_HISTORY_DATE_INDEX = False

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis re-delivers an unacked task after the visibility timeout: longer than any job runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Okada -------------------------------------------------------------------------------------
OKADA_JOB_RUN_RETENTION_DAYS = env.int("OKADA_JOB_RUN_RETENTION_DAYS", default=90)

# `manage.py migrate` (okada/core/management/commands/migrate.py): how long a migration waits for
# a lock (writers queue behind it meanwhile) before migrate stops with the migration unapplied.
OKADA_MIGRATE_LOCK_TIMEOUT = env.float("OKADA_MIGRATE_LOCK_TIMEOUT", default=5.0)
if OKADA_MIGRATE_LOCK_TIMEOUT <= 0:  # PostgreSQL reads a lock_timeout of 0 as no limit at all
    raise ImproperlyConfigured(
        f"OKADA_MIGRATE_LOCK_TIMEOUT={env.str('OKADA_MIGRATE_LOCK_TIMEOUT')!r} must be more than 0 seconds"
    )

# --- Partitions (okada.partitions: policies are declared in each app's partitions.py) ----------
# Months made ahead of the current one, for policies that do not say.
OKADA_PARTITION_PREMAKE_MONTHS = env.int("OKADA_PARTITION_PREMAKE_MONTHS", default=3)
# Retention per table where its policy allows one: "orders_orderevent=36" (months) or "=forever".
OKADA_PARTITION_RETENTION_MONTHS = env.dict("OKADA_PARTITION_RETENTION_MONTHS", default={})
# How long a maintenance step may queue for its lock (writers queue behind it meanwhile), and
# how many times it tries before leaving the step to the next run.
OKADA_PARTITION_LOCK_TIMEOUT_MS = env.int("OKADA_PARTITION_LOCK_TIMEOUT_MS", default=1000, minimum=1)
OKADA_PARTITION_LOCK_RETRIES = env.int("OKADA_PARTITION_LOCK_RETRIES", default=4)

# --- Backups (backups/; README "Backups") ------------------------------------------------------
OKADA_BACKUP_DIR = env.path("OKADA_BACKUP_DIR", default=str(BASE_DIR / "var" / "backups"))
# Retention: the newest backup of each of the N newest days, ISO weeks and months that have one.
OKADA_BACKUP_KEEP_DAILY = env.int("OKADA_BACKUP_KEEP_DAILY", default=30)
OKADA_BACKUP_KEEP_WEEKLY = env.int("OKADA_BACKUP_KEEP_WEEKLY", default=13)
OKADA_BACKUP_KEEP_MONTHLY = env.int("OKADA_BACKUP_KEEP_MONTHLY", default=12)
# ... and, besides, the N newest pre-migration backups (the ones to restore if a migration fails).
OKADA_BACKUP_KEEP_PRE_MIGRATION = env.int("OKADA_BACKUP_KEEP_PRE_MIGRATION", default=3)
# /readyz fails when the newest verified backup is older than this (nightly backup + daily drill:
# at most ~26 h in normal running, so one missed night shows).
OKADA_BACKUP_MAX_AGE_HOURS = env.int("OKADA_BACKUP_MAX_AGE_HOURS", default=36)
# Encrypt backup files with GPG (AES-256, symmetric) when set; the drill decrypts with it.
OKADA_BACKUP_PASSPHRASE = env("OKADA_BACKUP_PASSPHRASE", default="")
# pg_restore processes for drills and restores of unencrypted backups.
OKADA_BACKUP_RESTORE_JOBS = env.int("OKADA_BACKUP_RESTORE_JOBS", default=2, minimum=1)


# --- REST API (DESIGN.md section 4; okada/core/api) -------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["okada.core.api.auth.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["okada.core.api.auth.IsAuthenticatedCredential"],
    "DEFAULT_THROTTLE_CLASSES": ["okada.core.api.ratelimit.CredentialRateThrottle"],
    # JSON first: it answers `*/*`, `application/*` and no Accept. problem+json only answers
    # clients that accept nothing else (errors are problem+json whatever was negotiated, and a
    # success is labelled application/json even then: see ProblemJSONRenderer).
    "DEFAULT_RENDERER_CLASSES": [
        "okada.core.api.problems.JSONRenderer",
        "okada.core.api.problems.ProblemJSONRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["okada.core.api.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "okada.core.api.negotiation.ContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": None,  # lists paginate with okada.core.api.pagination
    "DEFAULT_SCHEMA_CLASS": "okada.core.api.schema.OkadaSchema",
    "EXCEPTION_HANDLER": "okada.core.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",  # RFC 3339, UTC (the API converts to UTC first)
    "COERCE_DECIMAL_TO_STRING": False,
}
# Who a bearer credential is: a function (token) -> okada.core.api.auth.Credential | None.
# The credentials app (vendor API keys, storefront keys, personal tokens) provides it.
OKADA_API_CREDENTIAL_RESOLVER = "okada.credentials.resolver.resolve"
# How long a web process may reuse an API key it read (checked against a Redis generation on every
# request, so a revocation still takes effect at once; see okada.core.api.auth). 0 = never.
OKADA_API_CREDENTIAL_CACHE_SECONDS = env.int("OKADA_API_CREDENTIAL_CACHE_SECONDS", default=60)
# Requests per credential (per client IP for calls without one) per window, in Redis.
OKADA_API_RATE_LIMIT = env("OKADA_API_RATE_LIMIT", default="600/minute")
OKADA_API_ANON_RATE_LIMIT = env("OKADA_API_ANON_RATE_LIMIT", default="60/minute")
# Failed logins (POST /api/v1/auth/token and the admin's login form) before a lock-out: per
# username from one address; per address (IPv6: per /64); per username from every address
# (okada.core.login_guard says why the last two are higher).
OKADA_API_LOGIN_RATE_LIMIT = env("OKADA_API_LOGIN_RATE_LIMIT", default="10/15minutes")
OKADA_API_LOGIN_ADDRESS_RATE_LIMIT = env("OKADA_API_LOGIN_ADDRESS_RATE_LIMIT", default="50/15minutes")
OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT = env("OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT", default="50/15minutes")
OKADA_API_RATELIMIT_REDIS_URL = env("OKADA_API_RATELIMIT_REDIS_URL", default=REDIS_URL)
# A request body larger than this is refused with 413 before it is read.
OKADA_API_MAX_BODY_BYTES = env.int("OKADA_API_MAX_BODY_BYTES", default=2 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = OKADA_API_MAX_BODY_BYTES
# Seconds a request body has to arrive in full under gunicorn (then 408): below GUNICORN_TIMEOUT,
# which kills a worker still waiting for one (a 500).
OKADA_API_BODY_TIMEOUT_SECONDS = env.int("OKADA_API_BODY_TIMEOUT_SECONDS", default=15, minimum=1)
# Idempotency-Key records are kept this long (then pruned by core.prune_idempotency_keys).
OKADA_IDEMPOTENCY_TTL_HOURS = env.int("OKADA_IDEMPOTENCY_TTL_HOURS", default=24, minimum=1)
# Personal tokens (POST /api/v1/auth/token) expire after this many hours.
OKADA_API_TOKEN_HOURS = env.int("OKADA_API_TOKEN_HOURS", default=12, minimum=1)
# Expired or revoked personal tokens are kept this many days (the admin shows who used them),
# then deleted by the hourly job credentials.prune_tokens.
OKADA_API_TOKEN_RETENTION_DAYS = env.int("OKADA_API_TOKEN_RETENTION_DAYS", default=7)
# HMAC-SHA256 secrets of the payment providers' callbacks; empty = that provider's callbacks
# are refused (401).
OKADA_PAYMENT_CALLBACK_SECRETS = {
    "mtn_momo": env("OKADA_MTN_MOMO_CALLBACK_SECRET", default=""),
    "orange_money": env("OKADA_ORANGE_MONEY_CALLBACK_SECRET", default=""),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Okada API",
    "DESCRIPTION": (
        "Vendors manage products, stock and orders; the storefront places orders. "
        "Authenticate with `Authorization: Bearer <key>`. Every error is RFC 9457 "
        "`application/problem+json`. See the README's API section."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Successes are documented as application/json only (ProblemJSONRenderer answers errors'
    # media type to clients that accept nothing else; errors are documented by the hook below).
    "RENDERER_WHITELIST": ["okada.core.api.problems.JSONRenderer"],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "PaymentMethodEnum": "orders.models.PaymentMethod",
        "PaymentResultEnum": "orders.models.PaymentResult",
    },
    "SWAGGER_UI_DIST": "SIDECAR",  # local assets, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "GET_LIB_DOC_EXCLUDES": "okada.core.api.schema.lib_doc_excludes",
    "PATH_CONVERTER_OVERRIDES": {
        "anyuuid": {"type": "string", "format": "uuid"}
    },  # okada.core.api.paths: ids in either case
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "okada.core.api.schema.add_problem_responses",
        "okada.core.api.schema.close_request_bodies",
    ],
}

# --- Request ids and logs ----------------------------------------------------------------------
LOG_REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"  # a caller's X-Request-ID is kept (1-200 of A-Za-z0-9._:-)...
GENERATE_REQUEST_ID_IF_NOT_IN_HEADER = True  # ...otherwise one is made
REQUEST_ID_RESPONSE_HEADER = "X-Request-ID"  # and echoed back
LOG_REQUESTS = False  # okada.core.api.middleware.AccessLogMiddleware writes the access log
# okada.core.logs: structlog renders every line (ours and the libraries'). "plain": readable lines
# (development); "json": one JSON object per line. A request's lines carry its request id, user or
# API credential and vendor; a task's its task id, task name and job.
OKADA_LOG_FORMAT = env("OKADA_LOG_FORMAT", default="plain")
LOGGING = logs.logging_config(OKADA_LOG_FORMAT)
# Celery workers keep these handlers instead of installing their own on the root logger.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Unpaid mobile-money orders expire (and release their stock) after this many minutes.
OKADA_MOBILE_MONEY_DEADLINE_MINUTES = env.int("OKADA_MOBILE_MONEY_DEADLINE_MINUTES", default=30)

# --- Operations admin --------------------------------------------------------------------------
# An open order in a status longer than this many minutes is "stuck" (highlighted on the dashboard
# and in the open-orders queue). Override one status: OKADA_STUCK_MINUTES="pending=10,ready=30".
OKADA_STUCK_MINUTES = {"pending": 15, "accepted": 20, "preparing": 45, "ready": 30, "out_for_delivery": 90}
_stuck_minutes = env.dict("OKADA_STUCK_MINUTES", cast={"value": int}, default={})
if _unknown_statuses := sorted(set(_stuck_minutes) - set(OKADA_STUCK_MINUTES)):
    raise ImproperlyConfigured(
        f"OKADA_STUCK_MINUTES={env.str('OKADA_STUCK_MINUTES')!r} names statuses that are not open ones: "
        f"{', '.join(_unknown_statuses)} (open: {', '.join(OKADA_STUCK_MINUTES)})"
    )
if _not_positive := sorted(status for status, minutes in _stuck_minutes.items() if minutes < 1):
    raise ImproperlyConfigured(
        f"OKADA_STUCK_MINUTES={env.str('OKADA_STUCK_MINUTES')!r}: minutes must be 1 or more "
        f"({', '.join(_not_positive)})"
    )
OKADA_STUCK_MINUTES.update(_stuck_minutes)
# A product whose available stock (on hand - reserved) is at most this is "low stock".
OKADA_LOW_STOCK_THRESHOLD = env.int("OKADA_LOW_STOCK_THRESHOLD", default=3)
# Stock.level counts available units only up to catalog.models.LOW_STOCK_CAP (20; settings cannot
# import models): a threshold at or above it would call every product "low stock".
if OKADA_LOW_STOCK_THRESHOLD >= 20:
    raise ImproperlyConfigured(
        f"OKADA_LOW_STOCK_THRESHOLD={env.str('OKADA_LOW_STOCK_THRESHOLD')!r} must be below 20 "
        "(catalog.models.LOW_STOCK_CAP: stock levels are counted up to it)"
    )
# The dashboard's figures that read many rows (14-day chart, today per city, low stock) are
# computed at most this often for every web process (in Redis) and shown with their time; 0: live.
OKADA_DASHBOARD_CACHE_SECONDS = env.int("OKADA_DASHBOARD_CACHE_SECONDS", default=60)
# Files served only to the staff user who asked for them (order exports): never under STATIC/MEDIA.
OKADA_PRIVATE_DIR = env.path("OKADA_PRIVATE_DIR", default=str(BASE_DIR / "var" / "private"))
# Exported files are deleted after this many days (they hold customers' phone numbers).
OKADA_EXPORT_RETENTION_DAYS = env.int("OKADA_EXPORT_RETENTION_DAYS", default=7)

# --- Offline sync (sync app; README "Offline sync") --------------------------------------------
# Rows per pull page when the device asks for none, and the most it may ask for.
OKADA_SYNC_PAGE_ROWS = env.int("OKADA_SYNC_PAGE_ROWS", default=500, minimum=1)
OKADA_SYNC_PAGE_MAX_ROWS = env.int("OKADA_SYNC_PAGE_MAX_ROWS", default=1000, minimum=1)
# Uncompressed JSON bytes of rows per page (a page always holds at least one row).
OKADA_SYNC_PAGE_MAX_BYTES = env.int("OKADA_SYNC_PAGE_MAX_BYTES", default=1024 * 1024, minimum=1)
# Mutations per push.
OKADA_SYNC_PUSH_MAX_MUTATIONS = env.int("OKADA_SYNC_PUSH_MAX_MUTATIONS", default=100, minimum=1)
# Stored push results (replayed to retries) kept this long.
OKADA_SYNC_MUTATION_RETENTION_DAYS = env.int("OKADA_SYNC_MUTATION_RETENTION_DAYS", default=30)
# Key that signs pull cursors; empty: SECRET_KEY. Changing it makes devices download again.
OKADA_SYNC_CURSOR_KEY = env("OKADA_SYNC_CURSOR_KEY", default="")
# A pushed mutation waits at most this long for a row lock, then the push answers try_again.
OKADA_SYNC_LOCK_TIMEOUT_MS = env.int("OKADA_SYNC_LOCK_TIMEOUT_MS", default=3000, minimum=1)
OKADA_SYNC_RETRY_AFTER_SECONDS = env.int("OKADA_SYNC_RETRY_AFTER_SECONDS", default=5)
# --- Database health (okada.health) ------------------------------------------------------------
# Every query behind the health screens, the snapshots and the alerts runs under this timeout
# (and a lock_timeout of the same length), read-only: the screens never hurt the database.
OKADA_HEALTH_STATEMENT_TIMEOUT_MS = env.int("OKADA_HEALTH_STATEMENT_TIMEOUT_MS", default=1000, minimum=1)
# Hourly snapshots of table, index and query statistics are kept this long.
OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS = env.int("OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS", default=90, minimum=1)
# The statements kept per snapshot: the top N by total time, by mean time and by calls.
OKADA_HEALTH_SNAPSHOT_QUERIES = env.int("OKADA_HEALTH_SNAPSHOT_QUERIES", default=200, minimum=1)
# Alerts: what opens one. Each is a row (opened, repeated, cleared, acknowledged), a banner in the
# admin and an ERROR log line; OKADA_HEALTH_ALERT_EMAIL also emails the Operations group.
OKADA_HEALTH_ALERT_EMAIL = env.bool("OKADA_HEALTH_ALERT_EMAIL", default=False)
OKADA_HEALTH_SEQUENCE_ALERT_PERCENT = env.percent("OKADA_HEALTH_SEQUENCE_ALERT_PERCENT", default=80.0)
OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT = env.percent("OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT", default=99.0)
OKADA_HEALTH_LONG_QUERY_MINUTES = env.float("OKADA_HEALTH_LONG_QUERY_MINUTES", default=5.0)
# A session idle inside an open transaction keeps its locks and holds back VACUUM's horizon: a
# warning past the first, critical past the second (which may not come before the first).
OKADA_HEALTH_IDLE_TRANSACTION_MINUTES = env.float("OKADA_HEALTH_IDLE_TRANSACTION_MINUTES", default=5.0)
OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES = env.float(
    "OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES", default=30.0
)
if OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES < OKADA_HEALTH_IDLE_TRANSACTION_MINUTES:
    raise ImproperlyConfigured(
        "OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES="
        f"{env.str('OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES', default='30')!r} must be at least "
        "OKADA_HEALTH_IDLE_TRANSACTION_MINUTES="
        f"{env.str('OKADA_HEALTH_IDLE_TRANSACTION_MINUTES', default='5')!r}"
    )
OKADA_HEALTH_LOCK_WAIT_SECONDS = env.float("OKADA_HEALTH_LOCK_WAIT_SECONDS", default=30.0)
OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT = env.percent("OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT", default=50.0)
# Multixact ids (row locks shared by several transactions) wrap around at the same 2^31.
OKADA_HEALTH_MULTIXACT_ALERT_PERCENT = env.percent("OKADA_HEALTH_MULTIXACT_ALERT_PERCENT", default=50.0)
OKADA_HEALTH_JOB_GRACE_MINUTES = env.int("OKADA_HEALTH_JOB_GRACE_MINUTES", default=30)
OKADA_HEALTH_QUEUE_GROWTH_MINUTES = env.int("OKADA_HEALTH_QUEUE_GROWTH_MINUTES", default=10)
# /metrics (Prometheus): a scraper sends `Authorization: Bearer <token>`, or comes from an
# allowed address (IPs or networks, comma-separated). Neither set: every scrape is refused.
OKADA_METRICS_TOKEN = env("OKADA_METRICS_TOKEN", default="")
OKADA_METRICS_ALLOWED_IPS = env.networks("OKADA_METRICS_ALLOWED_IPS", default=[])
# Okada's own gauges are computed at most this often (shared by every web process, in Redis).
OKADA_METRICS_CACHE_SECONDS = env.int("OKADA_METRICS_CACHE_SECONDS", default=15)
