"""gemproxy settings, read from environment variables with safe defaults.

Without REDIS_URL gemproxy runs embedded: one process, an in-memory channel
layer, in-process registry and counters, SQLite. With REDIS_URL every piece
that must be shared between processes moves to Redis; DATABASE_URL selects
PostgreSQL. The choice is made here, once.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

from gateway.compat.alias_setting import parse_aliases
from gemproxy_site import metrics_dir
from gemproxy_site.env import env_bool, env_float, env_int, env_list, env_str
from gemproxy_site.redis_options import async_client_options

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("GEMPROXY_DATA_DIR", str(BASE_DIR / "var")))


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in DATA_DIR.

    Proxy keys and executor tokens are stored as keyed hashes derived from it,
    so it must not change between restarts of an embedded install.
    """
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)

PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
if PUBLIC_BASE_URL:
    ALLOWED_HOSTS.append(urlsplit(PUBLIC_BASE_URL).hostname or "")
    CSRF_TRUSTED_ORIGINS = [PUBLIC_BASE_URL]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "accounts",
    "executors",
    "gateway",
    "resources",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gemproxy_site.urls"
ASGI_APPLICATION = "gemproxy_site.asgi.application"
# The API paths end in ":generateContent"; never redirect them to add a slash.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'gemproxy.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
# Every Redis key and channel gemproxy uses starts with this, so several
# installs (or test runs) can share one Redis.
REDIS_PREFIX = env_str("GEMPROXY_REDIS_PREFIX", "gemproxy:")
# Seconds any one Redis command (and a connect) may take before it fails. A
# Redis that hangs instead of refusing must still give callers a prompt 503,
# and must not stall a connection's heartbeats past the executor's deadline.
GEMPROXY_REDIS_TIMEOUT = env_float("GEMPROXY_REDIS_TIMEOUT", 2.0)
if REDIS_URL:
    # Pub/sub: one PUBLISH per frame, no shared per-process capacity to
    # overflow, and nothing left queued for a process that died. Messages to a
    # channel nobody listens on are lost, which the dispatcher already treats
    # as a missing acknowledgement. After a Redis restart redis-py's PubSub
    # reconnects and subscribes again to every channel it held (its on_connect),
    # so executors' channels need no help from us. See docs/deployment.md.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # The socket timeout acts on publishes only: the layer's reader
                # passes its own 0.1 s read timeout.
                "hosts": [{"address": REDIS_URL, **async_client_options(GEMPROXY_REDIS_TIMEOUT)}],
                "prefix": REDIS_PREFIX,
            },
        }
    }
    GEMPROXY_REGISTRY = "executors.registry.RedisRegistry"
    GEMPROXY_COUNTERS = "accounts.counters.in_redis.RedisCounters"
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "executors.layers.LocalChannelLayer",
            # A reply channel can hold a whole large answer while the client
            # reads slowly; the default of 100 messages would overflow.
            "CONFIG": {"capacity": 100_000, "expiry": 120},
        }
    }
    GEMPROXY_REGISTRY = "executors.registry.LocalRegistry"
    GEMPROXY_COUNTERS = "accounts.counters.in_process.InProcessCounters"

# Metrics (/metrics, gateway.metrics). Distributed installs usually run several
# processes on one machine: they share a directory, so any of them answers for
# all. Embedded, the one process counts in memory. An empty directory means per process.
GEMPROXY_METRICS_DIR = env_str("GEMPROXY_METRICS_DIR", str(DATA_DIR / "metrics") if REDIS_URL else "")
if GEMPROXY_METRICS_DIR:
    metrics_dir.prepare(Path(GEMPROXY_METRICS_DIR))
# When set, /metrics wants "Authorization: Bearer <this>".
GEMPROXY_METRICS_TOKEN = env_str("GEMPROXY_METRICS_TOKEN")
# Seconds each of /readyz's checks (database, Redis, executors) may take before it counts as failed.
GEMPROXY_READYZ_TIMEOUT = env_float("GEMPROXY_READYZ_TIMEOUT", 2.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The admin's and members' pages need only the apps' own static files, so
# WhiteNoise serves them straight from the apps: no collectstatic step.
WHITENOISE_USE_FINDERS = True
# Members sign in here; the admin's own login page refuses non-staff users.
LOGIN_URL = "/me/login/"

# Request body limits, by route: the server refuses a larger body as soon as
# the headers are in, before reading it (see gemproxy_site/body_limits.py).
# The Gemini JSON API (/v1/, /v1beta/, /v1alpha/); the gateway checks it again.
GEMPROXY_MAX_BODY_BYTES = env_int("GEMPROXY_MAX_BODY_BYTES", 20 * 1024 * 1024)
# Each request under /upload/: a resumable chunk (the SDKs send 8 MiB), or a whole multipart or media upload.
# Daphne holds a request's body before the application sees it, so a file larger than this goes in chunks.
GEMPROXY_MAX_UPLOAD_BODY_BYTES = env_int("GEMPROXY_MAX_UPLOAD_BODY_BYTES", GEMPROXY_MAX_BODY_BYTES)
# Everything else (admin, members' pages, the management API): Django's own default.
GEMPROXY_MAX_SITE_BODY_BYTES = env_int("GEMPROXY_MAX_SITE_BODY_BYTES", 2_621_440)
# Django's limit must not be lower than the server's, or a body the server let
# through would get Django's error instead of a Gemini-shaped one.
DATA_UPLOAD_MAX_MEMORY_SIZE = (
    max(GEMPROXY_MAX_BODY_BYTES, GEMPROXY_MAX_UPLOAD_BODY_BYTES, GEMPROXY_MAX_SITE_BODY_BYTES) + 1024 * 1024
)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# The Files API. A file's bytes, as Google allows them (2 GB), kept as long as Google keeps its (48 h).
GEMPROXY_MAX_FILE_BYTES = env_int("GEMPROXY_MAX_FILE_BYTES", 2 * 1024 * 1024 * 1024)
GEMPROXY_FILE_TTL_SECONDS = env_int("GEMPROXY_FILE_TTL_SECONDS", 48 * 3600)
# A resumable upload not finished within this is abandoned, and the sweep removes its parts.
GEMPROXY_UPLOAD_SESSION_SECONDS = env_int("GEMPROXY_UPLOAD_SESSION_SECONDS", 24 * 3600)
# Seconds between two sweeps of expired files in each gateway process; 0: only `manage.py sweep_files`.
GEMPROXY_FILES_SWEEP_INTERVAL = env_float("GEMPROXY_FILES_SWEEP_INTERVAL", 300.0)
# Where the bytes go: a folder under the data directory, or an S3-compatible bucket (django-storages).
GEMPROXY_S3_BUCKET = env_str("GEMPROXY_S3_BUCKET")
if GEMPROXY_S3_BUCKET:
    from boto3.s3.transfer import TransferConfig

    _FILES_STORAGE: dict = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": GEMPROXY_S3_BUCKET,
            "endpoint_url": env_str("GEMPROXY_S3_ENDPOINT_URL") or None,
            "region_name": env_str("GEMPROXY_S3_REGION") or None,
            "access_key": env_str("GEMPROXY_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("GEMPROXY_S3_SECRET_ACCESS_KEY") or None,
            "location": env_str("GEMPROXY_S3_PREFIX"),
            # Members' bytes are never public, and never silently replaced.
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
            # An upload streams to S3 in parts held in memory: 8 MiB each, two at a time, bounds it.
            "transfer_config": TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=2),
        },
    }
else:
    _FILES_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "files")},
    }
STORAGES = {
    "default": _FILES_STORAGE,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Dispatcher: seconds unless named otherwise.
GEMPROXY_DISPATCH_WAIT = env_float("GEMPROXY_DISPATCH_WAIT", 15.0)
GEMPROXY_ACK_TIMEOUT = env_float("GEMPROXY_ACK_TIMEOUT", 5.0)
GEMPROXY_FIRST_BYTE_TIMEOUT = env_float("GEMPROXY_FIRST_BYTE_TIMEOUT", 300.0)
GEMPROXY_IDLE_TIMEOUT = env_float("GEMPROXY_IDLE_TIMEOUT", 120.0)
GEMPROXY_TOTAL_TIMEOUT = env_float("GEMPROXY_TOTAL_TIMEOUT", 900.0)
GEMPROXY_MAX_ATTEMPTS = env_int("GEMPROXY_MAX_ATTEMPTS", 3)
GEMPROXY_COOLDOWN = env_float("GEMPROXY_COOLDOWN", 60.0)
# Heartbeats are sent by the gateway, so a background tab only has to answer;
# the deadline is generous because browsers delay even message handlers there.
GEMPROXY_HEARTBEAT_INTERVAL = env_float("GEMPROXY_HEARTBEAT_INTERVAL", 15.0)
GEMPROXY_HEARTBEAT_TIMEOUT = env_float("GEMPROXY_HEARTBEAT_TIMEOUT", 60.0)
# Seconds a gateway process may go without refreshing its liveness key in
# Redis (every second) before the others treat it as dead: its executors are
# no longer chosen, and calls they serve end (before the first byte: retried
# elsewhere). A GC pause or an overloaded machine must stay under it.
GEMPROXY_PROCESS_TTL = env_float("GEMPROXY_PROCESS_TTL", 10.0)
# Seconds a proxy key's lookup is trusted before asking the database again,
# which is also how long a revocation takes to reach every gateway process.
GEMPROXY_AUTH_CACHE_SECONDS = env_float("GEMPROXY_AUTH_CACHE_SECONDS", 5.0)

# Limits and usage.
GEMPROXY_ROTATION_GRACE_SECONDS = env_int("GEMPROXY_ROTATION_GRACE_SECONDS", 24 * 3600)
GEMPROXY_LEASE_SECONDS = env_float("GEMPROXY_LEASE_SECONDS", 60.0)
GEMPROXY_TOKEN_ESTIMATE_MAX = env_int("GEMPROXY_TOKEN_ESTIMATE_MAX", 4096)
# Model names foreign clients send, served by Gemini models: "gpt-4o=gemini-2.5-flash,claude-sonnet-4-5=gemini-2.5-pro".
# The admin's table (gateway.models.ModelAlias) adds to these and wins over them.
GEMPROXY_MODEL_ALIASES = parse_aliases(env_str("GEMPROXY_MODEL_ALIASES", ""))
GEMPROXY_USAGE_FLUSH_SECONDS = env_float("GEMPROXY_USAGE_FLUSH_SECONDS", 1.0)
# Each call's usage record is durable before its answer completes, so a killed
# process loses none (accounts.usage_queue): with REDIS_URL in a Redis stream,
# without it appended to a journal in this directory (accounts.usage_journal).
GEMPROXY_USAGE_QUEUE = env_bool("GEMPROXY_USAGE_QUEUE", True)
GEMPROXY_USAGE_JOURNAL_DIR = env_str("GEMPROXY_USAGE_JOURNAL_DIR", str(DATA_DIR / "usage-journal"))
# Seconds after which a process takes over records another one read from that
# queue and did not write (it died): longer than a slow database write.
GEMPROXY_USAGE_CLAIM_SECONDS = env_float("GEMPROXY_USAGE_CLAIM_SECONDS", 30.0)
GEMPROXY_USAGE_RETENTION_DAYS = env_int("GEMPROXY_USAGE_RETENTION_DAYS", 90)
# Sign-in throttling of /admin/ and /me/: so many wrong passwords for one username
# from one address lock it out there for so many seconds after the last one.
GEMPROXY_SIGNIN_FAILURE_LIMIT = env_int("GEMPROXY_SIGNIN_FAILURE_LIMIT", 10)
GEMPROXY_SIGNIN_LOCKOUT_SECONDS = env_int("GEMPROXY_SIGNIN_LOCKOUT_SECONDS", 15 * 60)
# A one-time sign-in link from invite_member or the admin works for so many seconds.
GEMPROXY_INVITE_SECONDS = env_int("GEMPROXY_INVITE_SECONDS", 7 * 24 * 3600)

LOG_FORMAT = "json" if env_str("LOG_FORMAT").strip().lower() == "json" else "plain"
if LOG_FORMAT == "json":
    # Python's warnings go to stderr as text otherwise: through logging, they are JSON lines too.
    logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # One JSON object per line, for log collectors (LOG_FORMAT=json).
        "json": {"()": "gemproxy_site.log_format.JsonFormatter"},
    },
    "filters": {
        # Every call already gets one line from gemproxy.calls; Django's own
        # line per 4xx/5xx answer would repeat it. Keep its tracebacks.
        "tracebacks_only": {"()": "django.utils.log.CallbackFilter", "callback": lambda record: bool(record.exc_info)},
        # "Internal Server Error: /me/welcome/<token>/" must not carry the token.
        "redact_secrets": {"()": "gemproxy_site.access_log.RedactingFilter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR", "filters": ["tracebacks_only", "redact_secrets"]}},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
