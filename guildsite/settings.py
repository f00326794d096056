"""guildsite settings: the one place that reads the environment.

Unset variables give the embedded default (SQLite under var/, in-memory channel
layer and messaging, agents in-process); see README "Configuration".
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import urlparse

from kombu import Exchange, Queue

from guildsite.env import (
    ConfigurationError,
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    redis_url_checked,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("GUILDSITE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ConfigurationError("SECRET_KEY must be set when DEBUG is off")
    # Development: one random key per checkout, kept so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ConfigurationError("ALLOWED_HOSTS must be set when DEBUG is off (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8880, minimum=1, maximum=65535)

REDIS_URL = redis_url_checked(env_str("REDIS_URL"))

# --- identity --------------------------------------------------------------
# Development only: trust the user a request names (seed 000's flow, unchanged). README "Authentication".
AUTH_DISABLED = env_bool("AUTH_DISABLED", DEBUG)
if AUTH_DISABLED and not DEBUG:
    raise ConfigurationError(
        "AUTH_DISABLED=1 trusts whatever user a request names and is for development only; it needs DEBUG=1. "
        "Unset AUTH_DISABLED (authentication on) to run with DEBUG off."
    )
GUILDSITE_JWT_SECRET = env_str("GUILDSITE_JWT_SECRET") or SECRET_KEY
GUILDSITE_ACCESS_TOKEN_SECONDS = env_int("GUILDSITE_ACCESS_TOKEN_SECONDS", 30 * 60, minimum=30)
GUILDSITE_REFRESH_TOKEN_SECONDS = env_int("GUILDSITE_REFRESH_TOKEN_SECONDS", 14 * 24 * 3600, minimum=60)
# Attempts at POST /api/auth/token per minute, counted per username and per client address.
GUILDSITE_TOKEN_RATE_PER_MINUTE = env_int("GUILDSITE_TOKEN_RATE_PER_MINUTE", 10, minimum=1)
# Served over HTTPS (the default with DEBUG off): the session and CSRF cookies go over TLS only.
GUILDSITE_HTTPS = env_bool("GUILDSITE_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = GUILDSITE_HTTPS
if env_bool("GUILDSITE_BEHIND_TLS_PROXY", False):  # a proxy that terminates TLS says so in this header
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("GUILDSITE_HSTS_SECONDS", 0, minimum=0)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "guildsite.accounts",
    "messaging",
    "catalog",
    "guilds",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "guildsite.urls"
ASGI_APPLICATION = "guildsite.asgi.application"
WSGI_APPLICATION = None

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

_database_url = env_str("DATABASE_URL")
if _database_url:
    # The web process (guildsite.serve) takes its PostgreSQL connections from a pool (GUILDSITE_DB_POOL_SIZE): under
    # ASGI each request's sync code runs on a thread of its own, so a connection kept per thread would outlive its
    # thread, one per request, until PostgreSQL refuses more. Workers keep one per thread (their threads live on).
    DATABASES = {"default": database_from_url(_database_url, pool_size=env_int("GUILDSITE_DB_POOL_SIZE", 0, minimum=0))}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "guildsite.sqlite3",
            # WAL lets the agents' writes and the API's reads overlap. synchronous=NORMAL, as SQLite advises with
            # WAL: a commit is not flushed to disk on its own (a crash of the process loses nothing; only a power
            # cut may lose the last commits), which makes each commit several times cheaper.
            # IMMEDIATE: a transaction takes the write lock when it begins, waiting up to `timeout` for it; a
            # deferred one that reads first fails at once ("database is locked") when another wrote meanwhile.
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                        "transaction_mode": "IMMEDIATE"},
            # A file, not shared-cache memory: agents write from the runtime thread while tests read.
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# Uploaded guild files (FilesWithTextFormat attachments).
MEDIA_ROOT = Path(env_str("GUILDSITE_FILES_DIR", str(VAR_DIR / "files")))
GUILDSITE_FILE_MAX_BYTES = env_int("GUILDSITE_FILE_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
# The most any HTTP request body may carry (guildsite.body_limit: refused with 413 before it is read); room for the
# largest file upload and its form. Trigger events have their own, GUILDSITE_TRIGGER_MAX_BYTES.
GUILDSITE_HTTP_BODY_MAX_BYTES = env_int("GUILDSITE_HTTP_BODY_MAX_BYTES", GUILDSITE_FILE_MAX_BYTES + 1024 * 1024,
                                        minimum=64 * 1024)

# Throttle counters and socket counts: shared by every process when Redis is there.
GUILDSITE_CACHE_PREFIX = env_str("GUILDSITE_CACHE_PREFIX", "guildsite")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": GUILDSITE_CACHE_PREFIX,
                          # One pool per process, not per thread (a thread per request under ASGI).
                          "OPTIONS": {"pool_class": "guildsite.cache_pool.SharedConnectionPool"}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": GUILDSITE_CACHE_PREFIX}}

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # redis-py 8 defaults socket_timeout to 5 s, which kills idle layer sockets.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- messaging -------------------------------------------------------------
# The site's default messaging backend for guilds whose spec names none.
GUILDSITE_MESSAGING_BACKEND = "redis" if REDIS_URL else "memory"
GUILDSITE_MESSAGE_MAX_BYTES = env_int("GUILDSITE_MESSAGE_MAX_BYTES", 1024 * 1024, minimum=1024)
GUILDSITE_MESSAGE_TTL_SECONDS = env_int("GUILDSITE_MESSAGE_TTL_SECONDS", 7 * 24 * 3600, minimum=1)
GUILDSITE_TOPIC_HISTORY_LIMIT = env_int("GUILDSITE_TOPIC_HISTORY_LIMIT", 10_000, minimum=10)
# Heartbeats and health reports (messaging.topics.history_limit): only the latest matter.
GUILDSITE_STATUS_HISTORY_LIMIT = env_int("GUILDSITE_STATUS_HISTORY_LIMIT", 50, minimum=10)
# The Redis servers (host:port) a guild's spec may name for its messaging, besides REDIS_URL's.
GUILDSITE_SPEC_REDIS_ALLOWED = env_list("GUILDSITE_SPEC_REDIS_ALLOWED", ["localhost:6379", "127.0.0.1:6379"])

# --- guild runtime ---------------------------------------------------------
# "inprocess" (agents in this process) or "celery" (agents in Celery workers).
GUILDSITE_EXECUTION_ENGINE = env_str("GUILDSITE_EXECUTION_ENGINE", "celery" if REDIS_URL else "inprocess")
if GUILDSITE_EXECUTION_ENGINE not in {"inprocess", "celery"}:
    raise ConfigurationError(
        f"GUILDSITE_EXECUTION_ENGINE={GUILDSITE_EXECUTION_ENGINE!r}: use 'inprocess' or 'celery'"
    )
if GUILDSITE_EXECUTION_ENGINE == "celery" and not REDIS_URL:
    raise ConfigurationError("GUILDSITE_EXECUTION_ENGINE=celery needs REDIS_URL (the broker and message store)")
if GUILDSITE_EXECUTION_ENGINE == "inprocess" and not REDIS_URL and not DEBUG:
    raise ConfigurationError(
        "with DEBUG off the in-process engine needs REDIS_URL: it holds each guild's lease there, so that two "
        "web processes never both run one (set REDIS_URL, or DEBUG=1 for a single development process)"
    )
GUILDSITE_HEARTBEAT_INTERVAL = env_float("GUILDSITE_HEARTBEAT_INTERVAL", 5.0, minimum=0.05)
# An agent silent for this long makes its guild WARNING.
GUILDSITE_HEARTBEAT_TIMEOUT = env_float("GUILDSITE_HEARTBEAT_TIMEOUT", 15.0, minimum=0.1)
# Seed 003's gRPC services (guilds.grpc): served by the web process on the embedded default, else by
# `manage.py rungrpc` (the Procfile's `grpc`). GRPC_PORT 0: not served.
GRPC_PORT = env_int("GRPC_PORT", 50051, minimum=0, maximum=65535)
GRPC_HOST = env_str("GRPC_HOST") or "127.0.0.1"  # `make run` sets it to its HOST
GUILDSITE_GRPC_IN_PROCESS = env_bool("GUILDSITE_GRPC_IN_PROCESS", not REDIS_URL)
# External agents (guilds.external): the heartbeat interval they are given, offline after this many missed; a
# ping every GUILDSITE_EXTERNAL_PING_SECONDS and a close (4408) when two go unanswered; at most this many
# messages wait per agent (the oldest go to the dead letters) and this many are sent before it acknowledges.
GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS = env_float("GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS", 10.0, minimum=0.05)
GUILDSITE_EXTERNAL_MISSED_HEARTBEATS = env_int("GUILDSITE_EXTERNAL_MISSED_HEARTBEATS", 3, minimum=1)
GUILDSITE_EXTERNAL_PING_SECONDS = env_float("GUILDSITE_EXTERNAL_PING_SECONDS", 20.0, minimum=0.05)
GUILDSITE_EXTERNAL_QUEUE_LIMIT = env_int("GUILDSITE_EXTERNAL_QUEUE_LIMIT", 10_000, minimum=1)
GUILDSITE_EXTERNAL_IN_FLIGHT = env_int("GUILDSITE_EXTERNAL_IN_FLIGHT", 100, minimum=1)
GUILDSITE_EXTERNAL_RATE_PER_SECOND = env_float("GUILDSITE_EXTERNAL_RATE_PER_SECOND", 500.0, minimum=0.1)
GUILDSITE_EXTERNAL_RATE_BURST = env_int("GUILDSITE_EXTERNAL_RATE_BURST", 1000, minimum=1)
GUILDSITE_EXTERNAL_AGENTS_PER_ORG = env_int("GUILDSITE_EXTERNAL_AGENTS_PER_ORG", 100, minimum=1)
GUILDSITE_EXTERNAL_COMMAND_MAX_TIMEOUT_S = env_int("GUILDSITE_EXTERNAL_COMMAND_MAX_TIMEOUT_S", 86_400, minimum=1)
# Launch guilds that should be running when the server starts.
GUILDSITE_RELAUNCH_ON_START = env_bool("GUILDSITE_RELAUNCH_ON_START", True)
# A guild with no socket and no message for this long is suspended (its agents unloaded); 0: never.
GUILDSITE_GUILD_IDLE_SECONDS = env_float("GUILDSITE_GUILD_IDLE_SECONDS", 3600.0, minimum=0.0)
if 0 < GUILDSITE_GUILD_IDLE_SECONDS < 1:
    raise ConfigurationError(
        f"GUILDSITE_GUILD_IDLE_SECONDS={GUILDSITE_GUILD_IDLE_SECONDS:g} is below the minimum 1 (0 never suspends)"
    )
# A message whose handling fails outside its handler this many times goes to the guild's dead letters.
GUILDSITE_DELIVERY_MAX_ATTEMPTS = env_int("GUILDSITE_DELIVERY_MAX_ATTEMPTS", 5, minimum=1, maximum=100)
# Diagnostic agents (guilds.agents.probe.ProbeAgent) may be named in specs: for tests and benchmarks.
GUILDSITE_DIAGNOSTIC_AGENTS = env_bool("GUILDSITE_DIAGNOSTIC_AGENTS", False)

# --- sockets ---------------------------------------------------------------
GUILDSITE_WS_FRAME_MAX_BYTES = env_int("GUILDSITE_WS_FRAME_MAX_BYTES", 256 * 1024, minimum=1024)
# Over the soft limit above a frame gets a PAYLOAD_TOO_LARGE error and the socket stays open; over this
# one the server closes the socket (1009) without reading it whole.
GUILDSITE_WS_FRAME_HARD_MAX_BYTES = env_int("GUILDSITE_WS_FRAME_HARD_MAX_BYTES", 1024 * 1024, minimum=2048)
if GUILDSITE_WS_FRAME_HARD_MAX_BYTES < GUILDSITE_WS_FRAME_MAX_BYTES:
    raise ConfigurationError("GUILDSITE_WS_FRAME_HARD_MAX_BYTES must be at least GUILDSITE_WS_FRAME_MAX_BYTES")
# A system socket whose user opens no user socket (a monitor, a dashboard) hears "ok" this long after
# its first report; the seed's client opens its user socket on that report and waits for its proxy.
GUILDSITE_WATCHER_GRACE_SECONDS = env_float("GUILDSITE_WATCHER_GRACE_SECONDS", 3.0, minimum=0.0)
GUILDSITE_WS_RATE_PER_SECOND = env_float("GUILDSITE_WS_RATE_PER_SECOND", 50.0, minimum=0.1)
GUILDSITE_WS_RATE_BURST = env_int("GUILDSITE_WS_RATE_BURST", 100, minimum=1)
GUILDSITE_WS_HISTORY_ON_CONNECT = env_int("GUILDSITE_WS_HISTORY_ON_CONNECT", 50, minimum=0)
# Frames, and their bytes, waiting for a slow client; past either the socket is closed (4429) and the
# client resumes. The bytes bound is per socket: 20 sockets a user, each of a slow client, hold 20 times it.
GUILDSITE_WS_OUTBOX_LIMIT = env_int("GUILDSITE_WS_OUTBOX_LIMIT", 10_000, minimum=10)
GUILDSITE_WS_OUTBOX_MAX_BYTES = env_int("GUILDSITE_WS_OUTBOX_MAX_BYTES", 8 * 1024 * 1024, minimum=64 * 1024)
# An open socket checks its credential and rights again this often (and when its token expires).
GUILDSITE_WS_RECHECK_SECONDS = env_float("GUILDSITE_WS_RECHECK_SECONDS", 60.0, minimum=0.05)
# Open sockets per user (every process together); the next is closed with 1008 TOO_MANY_SOCKETS.
GUILDSITE_WS_MAX_PER_USER = env_int("GUILDSITE_WS_MAX_PER_USER", 20, minimum=1)
# The live socket (/api/ws): a ping this often, closed with 4408 when no pong came this long after one;
# the topics one socket may follow.
GUILDSITE_WS_PING_SECONDS = env_float("GUILDSITE_WS_PING_SECONDS", 30.0, minimum=0.05)
GUILDSITE_WS_PONG_TIMEOUT_SECONDS = env_float("GUILDSITE_WS_PONG_TIMEOUT_SECONDS", 30.0, minimum=0.05)
GUILDSITE_WS_MAX_TOPICS = env_int("GUILDSITE_WS_MAX_TOPICS", 500, minimum=1)

# --- Celery ----------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = False
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("GUILDSITE_CELERY_VISIBILITY_TIMEOUT", 60, minimum=5)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# One queue per site (tests give each run its own, so runs sharing a Redis never take each other's tasks).
CELERY_TASK_DEFAULT_QUEUE = env_str("GUILDSITE_CELERY_QUEUE", "guildsite")
# Webhook deliveries have a queue of their own, so a slow receiver never holds a process that agents run on: the
# Procfile's `webhooks` worker takes it (threads: deliveries wait on the network), its `worker` leaves it (-X).
GUILDSITE_WEBHOOK_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-webhooks"
# Each queue bound to an exchange of its own name, so a task routed to one never lands in the other as well.
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name)
                      for name in (CELERY_TASK_DEFAULT_QUEUE, GUILDSITE_WEBHOOK_QUEUE)]
CELERY_TASK_ROUTES = {"guilds.tasks.webhook_deliver": {"queue": GUILDSITE_WEBHOOK_QUEUE}}
# Schedules (guilds.schedules): due firings are claimed this often, by Celery beat's task in production
# (GUILDSITE_SCHEDULE_TICKER=beat, the default with REDIS_URL) or by a ticker in the web process
# ("inprocess", the embedded default); "off": nothing fires them (tests drive guilds.schedules.tick).
GUILDSITE_SCHEDULE_TICK_SECONDS = env_float("GUILDSITE_SCHEDULE_TICK_SECONDS", 10.0, minimum=0.05)
GUILDSITE_SCHEDULE_TICKER = env_str("GUILDSITE_SCHEDULE_TICKER", "beat" if REDIS_URL else "inprocess")
if GUILDSITE_SCHEDULE_TICKER not in ("beat", "inprocess", "off"):
    raise ConfigurationError("GUILDSITE_SCHEDULE_TICKER must be beat, inprocess or off")
# A run_once schedule's catch-up firing is sent if the latest missed firing is at most this old.
GUILDSITE_SCHEDULE_GRACE_SECONDS = env_float("GUILDSITE_SCHEDULE_GRACE_SECONDS", 300.0, minimum=0.0)
# Schedules one guild may have (the next is a 409 too_many_schedules).
GUILDSITE_SCHEDULES_PER_GUILD = env_int("GUILDSITE_SCHEDULES_PER_GUILD", 100, minimum=1)

# Inbound triggers (guilds.triggers): POST /api/triggers/{id}/events, signed with X-Zerg-Timestamp/-Signature.
GUILDSITE_TRIGGER_MAX_BYTES = env_int("GUILDSITE_TRIGGER_MAX_BYTES", 1024 * 1024, minimum=1024)
GUILDSITE_TRIGGER_RATE_PER_MINUTE = env_int("GUILDSITE_TRIGGER_RATE_PER_MINUTE", 60, minimum=1)
# A timestamp further than this from now is refused; an event seen within it is a replay.
GUILDSITE_TRIGGER_WINDOW_SECONDS = env_int("GUILDSITE_TRIGGER_WINDOW_SECONDS", 300, minimum=1)
# After a rotation the previous secret keeps verifying this long.
GUILDSITE_TRIGGER_ROTATION_GRACE_SECONDS = env_int("GUILDSITE_TRIGGER_ROTATION_GRACE_SECONDS", 3600, minimum=0)
GUILDSITE_TRIGGERS_PER_GUILD = env_int("GUILDSITE_TRIGGERS_PER_GUILD", 100, minimum=1)
# Seed 004's one site-wide secret, for triggers made with use_site_secret (zerg's senders, unchanged).
TRIGGER_SIGNING_SECRET = env_str("TRIGGER_SIGNING_SECRET") or ""
# The key that seals the secrets of triggers and webhooks (guildsite.sealing).
GUILDSITE_SEALING_KEY = env_str("GUILDSITE_SEALING_KEY") or SECRET_KEY

# Outbound webhooks (guilds.webhooks): sent by a Celery task in production ("celery", the default with REDIS_URL),
# by a sender thread in the web process on the embedded default ("inprocess").
GUILDSITE_WEBHOOK_SENDER = env_str("GUILDSITE_WEBHOOK_SENDER", "celery" if REDIS_URL else "inprocess")
if GUILDSITE_WEBHOOK_SENDER not in ("celery", "inprocess"):
    raise ConfigurationError("GUILDSITE_WEBHOOK_SENDER must be celery or inprocess")
GUILDSITE_WEBHOOK_MAX_ATTEMPTS = env_int("GUILDSITE_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
# Attempt n+1 comes BASE x FACTOR^(n-1) seconds after attempt n failed (5 s, 20 s, 80 s, ... about 7.6 h in all).
GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS = env_float("GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS", 5.0, minimum=0.01)
GUILDSITE_WEBHOOK_RETRY_FACTOR = env_float("GUILDSITE_WEBHOOK_RETRY_FACTOR", 4.0, minimum=1.0)
GUILDSITE_WEBHOOK_TIMEOUT_SECONDS = env_float("GUILDSITE_WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# Receivers on private, loopback or link-local addresses are refused unless this is on.
GUILDSITE_WEBHOOK_ALLOW_PRIVATE = env_bool("GUILDSITE_WEBHOOK_ALLOW_PRIVATE", False)
GUILDSITE_WEBHOOKS_PER_GUILD = env_int("GUILDSITE_WEBHOOKS_PER_GUILD", 20, minimum=1)
# How often deliveries that are due and that no task or timer is sending are looked for (0: never; the tests,
# whose teardown empties the tables, do not want a sweep's query in its way).
GUILDSITE_WEBHOOK_SWEEP_SECONDS = env_float("GUILDSITE_WEBHOOK_SWEEP_SECONDS", 10.0, minimum=0.0)

CELERY_BEAT_SCHEDULE = {
    "guild-health-ticks": {"task": "guilds.tasks.health_ticks", "schedule": GUILDSITE_HEARTBEAT_INTERVAL},
    # Idle guilds are looked for a few times per idle period, at least once a minute (guilds.runtime.activity).
    "guild-idle-check": {"task": "guilds.tasks.suspend_idle_guilds",
                         "schedule": max(0.25, min(60.0, (GUILDSITE_GUILD_IDLE_SECONDS or 3600.0) / 4))},
    **({"schedules-tick": {"task": "guilds.tasks.schedules_tick", "schedule": GUILDSITE_SCHEDULE_TICK_SECONDS}}
       if GUILDSITE_SCHEDULE_TICKER == "beat" else {}),
    # Webhook deliveries whose retry is due (too far off for a countdown), or whose task was lost.
    **({"webhooks-sweep": {"task": "guilds.tasks.webhooks_sweep", "schedule": GUILDSITE_WEBHOOK_SWEEP_SECONDS}}
       if GUILDSITE_WEBHOOK_SENDER == "celery" and GUILDSITE_WEBHOOK_SWEEP_SECONDS else {}),
}

# --- REST ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    # guildsite.identity: the one resolver. Development's trusted X-User-Id comes before the session
    # so that the seed's clients act as the user they name.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "guildsite.identity.BearerAuthentication",
        "guildsite.identity.DevelopmentAuthentication",
        "guildsite.identity.SessionCookieAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["guildsite.identity.SignedIn"],
    "EXCEPTION_HANDLER": "guildsite.errors.problem_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "guildsite API",
    "DESCRIPTION": ("Catalog of agents and blueprints, guild launch and control. In the browser: "
                    "[the dashboard](/dashboard/), [runs](/dashboard/runs/), [the catalog](/dashboard/catalog/), "
                    "[chat](/chat/), [the admin](/admin/)."),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files from the installed package, not a CDN: the docs work offline, pinned.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The Authorize button's token survives a reload of the page.
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True},
    # Several models have a `status` or a `role`: each choice set keeps its own name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "GuildStatusEnum": "guilds.models.GuildStatus",
        "RunStatusEnum": "guilds.models.RunStatus",
        "MessageRoleEnum": "guilds.models.MessageRole",
        "RoleEnum": "guildsite.accounts.models.Role",
    },
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigurationError(f"LOG_LEVEL={LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # The plain line, with the guild_id / agent_id of records that carry them.
    "formatters": {"plain": {"()": "guildsite.log_format.ContextFormatter",
                             "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default config gives "django" a console handler of its own; its records also reach
        # the root's, so every 4xx (django.request) was written twice. Configuring it drops its handlers.
        "django": {"handlers": [], "level": "INFO"},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # A line per task received and per task done: drain tasks come by the hundred a second.
        # LOG_LEVEL=DEBUG shows them again.
        "celery.worker.strategy": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"},
        "celery.app.trace": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"},
    },
}


# --- LLM agents (guilds.agents.llm) ------------------------------------------
# Site defaults for an LLMAgent whose spec leaves them out; any OpenAI-compatible server.
LLM_BASE_URL = env_str("LLM_BASE_URL", "https://api.openai.com/v1")
LLM_MODEL = env_str("LLM_MODEL", "gpt-4o-mini")
# Read from the environment at call time by name (api_key_env), never copied into settings output or logs.
GUILDSITE_LLM_KEY_ENVS = env_list("GUILDSITE_LLM_KEY_ENVS", ["OPENAI_API_KEY"])
# Provider hosts a spec may name: "host" (any port) or "host:port". A spec must not send a key elsewhere.
GUILDSITE_LLM_HOSTS = env_list("GUILDSITE_LLM_HOSTS", list(dict.fromkeys(
    [h for h in ((urlparse(LLM_BASE_URL).hostname or ""), "api.openai.com") if h])))
LLM_TOKEN_STREAM = env_bool("LLM_TOKEN_STREAM", True)
GUILDSITE_LLM_TIMEOUT_SECONDS = env_float("GUILDSITE_LLM_TIMEOUT_SECONDS", 120.0, minimum=0.1)
GUILDSITE_LLM_MAX_RETRIES = env_int("GUILDSITE_LLM_MAX_RETRIES", 3, minimum=0, maximum=10)
# First retry's wait; doubled each time (a Retry-After from the provider wins when shorter than 60 s).
GUILDSITE_LLM_RETRY_BASE_SECONDS = env_float("GUILDSITE_LLM_RETRY_BASE_SECONDS", 0.5, minimum=0.0)
# Token chunks after the first go out every this many seconds or bytes, whichever comes first.
GUILDSITE_LLM_STREAM_FLUSH_SECONDS = env_float("GUILDSITE_LLM_STREAM_FLUSH_SECONDS", 0.04, minimum=0.0)
GUILDSITE_LLM_STREAM_FLUSH_BYTES = env_int("GUILDSITE_LLM_STREAM_FLUSH_BYTES", 512, minimum=1)
# MCP servers an LLM agent's spec may name (host or host:port; none unless listed), how long a server's tool
# listing is kept, and how long one tool call may take.
GUILDSITE_MCP_HOSTS = env_list("GUILDSITE_MCP_HOSTS", [])
GUILDSITE_MCP_TOOLS_TTL_SECONDS = env_float("GUILDSITE_MCP_TOOLS_TTL_SECONDS", 300.0, minimum=0.0)
GUILDSITE_MCP_TIMEOUT_SECONDS = env_float("GUILDSITE_MCP_TIMEOUT_SECONDS", 30.0, minimum=0.1)
# Tool calls one round of a run may make (more are answered with an error), and a call's arguments' size.
GUILDSITE_MCP_MAX_CALLS_PER_ROUND = env_int("GUILDSITE_MCP_MAX_CALLS_PER_ROUND", 16, minimum=1, maximum=256)
GUILDSITE_MCP_MAX_ARGUMENT_BYTES = env_int("GUILDSITE_MCP_MAX_ARGUMENT_BYTES", 64 * 1024, minimum=1024)
# Which MCP hosts each token variable may be sent to: {"ACME_TOKEN": ["tools.acme.com"]}. A variable named here
# must also be in GUILDSITE_LLM_KEY_ENVS; one not named here goes to no MCP server (the provider's key included).
try:
    GUILDSITE_MCP_TOKEN_HOSTS = json.loads(env_str("GUILDSITE_MCP_TOKEN_HOSTS", "{}"))
except ValueError:
    raise ConfigurationError('GUILDSITE_MCP_TOKEN_HOSTS is not JSON (expected {"NAME": ["host", "host:port"]})') from None
if not isinstance(GUILDSITE_MCP_TOKEN_HOSTS, dict) or not all(
        isinstance(v, list) and all(isinstance(h, str) for h in v) for v in GUILDSITE_MCP_TOKEN_HOSTS.values()):
    raise ConfigurationError('GUILDSITE_MCP_TOKEN_HOSTS: each variable needs a list of hosts: {"NAME": ["host"]}')
# A running run looks for a cancel request this often (the request may come to any process).
GUILDSITE_RUN_CANCEL_POLL_SECONDS = env_float("GUILDSITE_RUN_CANCEL_POLL_SECONDS", 0.1, minimum=0.01)
# Prices overriding genai-prices', USD per million tokens: {"model": {"input": 0.15, "output": 0.6, "cached": 0.075}}.
try:
    GUILDSITE_LLM_PRICES = json.loads(env_str("GUILDSITE_LLM_PRICES", "{}"))
except ValueError:
    raise ConfigurationError("GUILDSITE_LLM_PRICES is not JSON (expected {\"model\": {\"input\": …, \"output\": …}})") from None
if not isinstance(GUILDSITE_LLM_PRICES, dict) or not all(
        isinstance(v, dict) and {"input", "output"} <= set(v) for v in GUILDSITE_LLM_PRICES.values()):
    raise ConfigurationError("GUILDSITE_LLM_PRICES: each model needs {\"input\": …, \"output\": …} in USD per million tokens")

# Packages whose classes may be named as agents in specs (comma-separated to extend).
GUILDSITE_AGENT_PACKAGES = env_list("GUILDSITE_AGENT_PACKAGES", ["guilds.agents", "guilds.runtime"])
