"""Conduit settings.

Every value comes from the environment (or `.env.local` / `.env` next to manage.py, the real
environment winning), read here once with django-environ. Nothing else in the project reads
`os.environ`. The defaults run with nothing installed but Python: SQLite and the in-memory
channel layer. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from corsheaders.defaults import default_headers as cors_default_headers
from django.core.exceptions import ImproperlyConfigured

from config import __version__

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# setdefault semantics: the real environment wins over .env.local, which wins over .env.
for env_file in (BASE_DIR / ".env.local", BASE_DIR / ".env"):
    if env_file.is_file():
        env.read_env(env_file)

DEBUG = env.bool("DEBUG", default=False)
VERSION = __version__
APP_NAME = env.str("APP_NAME", default="Conduit")

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or in .env.local "
            "(for example: SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')), "
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"


def derived_key(purpose: str) -> str:
    """A key for one purpose, derived from SECRET_KEY, for when no dedicated key is configured."""
    return hashlib.sha256(f"conduit:{purpose}:{SECRET_KEY}".encode()).hexdigest()


ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # before staticfiles: makes `runserver` serve ASGI (websockets) in development
    "config.admin_site.ConduitAdminConfig",  # django.contrib.admin, with the site branded Conduit
    "django.contrib.auth",
    "django.contrib.humanize",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "mozilla_django_oidc",
    "channels",
    "config",
    "accounts",
    "agents",
    "connections",
    "orgproxy",
    "assistant",
    "usage",
    "auditlog",
    "audit",
    "lifecycle",
    "observability",
]

MIDDLEWARE = [
    # Outermost: every HTML page, whoever answers it, gets the Content-Security-Policy.
    "config.http.middleware.ContentSecurityPolicyMiddleware",
    "config.http.middleware.RequestIdMiddleware",
    # Before anything that can answer early (CommonMiddleware), so every answer carries CORS headers.
    "corsheaders.middleware.CorsMiddleware",
    # Before URL resolution: `/api/v1/…/` routed as `/api/v1/…`; NUL in the query string refused.
    "config.http.middleware.RequestEdgeMiddleware",
    # Django's own, whose hooks run on the event loop on the ASGI path (config/http/loop_middleware.py).
    "config.http.loop_middleware.SecurityMiddleware",
    "config.http.loop_middleware.SessionMiddleware",
    "config.http.loop_middleware.CommonMiddleware",
    "config.http.loop_middleware.CsrfViewMiddleware",
    # Django's AuthenticationMiddleware, also telling django-auditlog who changes models (audit/).
    "audit.middleware.AuthenticationMiddleware",
    "config.http.loop_middleware.MessageMiddleware",
    "config.http.loop_middleware.XFrameOptionsMiddleware",
]

# --- Observability (observability/, docs/observability.md) -------------------------------------
# Prometheus series and `GET /metrics`; off: no series, no middleware, /metrics answers 404.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
# With a token, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; without, only clients on
# this machine that reach it directly (no X-Forwarded-For).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where worker processes write their series for each other (prometheus-client's multiprocess mode); set by
# `manage.py run` for its workers (a fresh directory per start), or by the operator for another server.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if "PROMETHEUS_MULTIPROC_DIR" in os.environ and not PROMETHEUS_MULTIPROC_DIR:
    # prometheus-client takes the variable's presence, even empty, as multiprocess mode (files in the cwd).
    raise ImproperlyConfigured("PROMETHEUS_MULTIPROC_DIR is set but empty: unset it, or name a directory.")
if METRICS_ENABLED:
    # Outermost: counts and times what every other middleware does, answers included.
    MIDDLEWARE.insert(0, "observability.middleware.ObservabilityMiddleware")
# OpenTelemetry traces over OTLP/HTTP when an endpoint is set; the SDK reads the other OTEL_* variables
# (headers, timeout, OTEL_BSP_* batching, OTEL_RESOURCE_ATTRIBUTES…) itself.
OTEL_TRACES_ENABLED = bool(
    env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="") or env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="")
) and env.str("OTEL_TRACES_EXPORTER", default="otlp").lower() != "none" and not env.bool("OTEL_SDK_DISABLED", default=False)
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="conduit")
# Prompts, answers and system prompts in `chat` spans: off unless asked for (they are users' data).
OTEL_CAPTURE_MESSAGE_CONTENT = env.bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", default=False)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database ---------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, with a process's autocommit writes taking turns before SQLite's busy handler
    # gets to put them to sleep (config/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "config.sqlite"
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock up front so
    # concurrent writers wait (timeout) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # The test database is a file too, not Django's shared-cache memory database: turns' database work
    # runs on several threads (config/threads.py), which must meet WAL and the busy timeout as they do in
    # production (a shared-cache memory database answers concurrent writers "database table is locked").
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"conduit-test-{os.getpid()}.sqlite3"),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with the per-request health check answered by the socket when it shows
    # nothing wrong instead of a `SELECT 1` round trip (config/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
# Connections are kept per server thread and reused, on SQLite too: opening one (and running the
# init pragmas) costs about as much as the rest of a small request (bench/RESULTS.md). A connection
# found broken at the start of a request is replaced rather than failing the request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and channel layer -----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Connections one process may open to Redis for the channel layer. redis-py 8's pools allow 100
# and then *fail* (MaxConnectionsError) rather than wait; every concurrent send, receive and
# group_add holds one, so a process with a few hundred live answers ran out (bench/RESULTS.md).
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=2000)


def redis_channel_layer(url: str) -> dict:
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 times socket reads out after 5 s by default, exactly as long as
            # channels-redis blocks in BZPOPMIN waiting for messages: idle consumers would die.
            "hosts": [
                {
                    "address": url,
                    "socket_timeout": 30,
                    "socket_connect_timeout": 5,
                    "max_connections": REDIS_MAX_CONNECTIONS,
                }
            ],
            "prefix": "conduit:asgi",
            # group_send to a full channel drops messages silently: leave generous room.
            "capacity": 1000,
            "expiry": 60,
        },
    }


if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",  # one redis-py client per pool (config/cache.py)
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "conduit",
        }
    }
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Channels' in-memory layer, sweeping expired messages once a second rather than on every message.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "config.channel_layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

# --- Users and passwords ----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "accounts.hashers.TunedArgon2PasswordHasher",  # Argon2 with the ARGON2_* parameters below
    # Kept so hashes made by another hasher still verify (and are upgraded to Argon2 on login).
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = env.str("LOGIN_REDIRECT_URL", default="/chat/")
LOGOUT_REDIRECT_URL = env.str("LOGOUT_REDIRECT_URL", default="/accounts/login/")

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First class decides the 401's WWW-Authenticate header: Bearer. The provider class comes
        # before simplejwt because simplejwt *rejects* (rather than passes on) any token it can't
        # verify; the provider class takes only RS256 tokens and passes on everything else, which
        # keeps local HS256 tokens and provider RS256 tokens apart by their header's `alg`.
        "accounts.authentication.ProviderTokenAuthentication",
        # Personal API keys (`cdk_…`): before simplejwt, which would reject them as malformed JWTs.
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.LocalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser plus the checks of config/untrusted.py (nesting, NUL characters…).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",  # documents every error status
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        "login_ip": env.str("THROTTLE_LOGIN_PER_IP", default="20/min"),
        "login_email": env.str("THROTTLE_LOGIN_PER_EMAIL", default="5/min"),
        "register_ip": env.str("THROTTLE_REGISTER_PER_IP", default="20/hour"),
    },
}

SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    # A key of its own, so tokens can be rotated without touching SECRET_KEY (sessions, CSRF).
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default="") or derived_key("jwt"),
    "ISSUER": env.str("JWT_ISSUER", default="conduit"),
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_ACCESS_TOKEN_LIFETIME", default=900)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_REFRESH_TOKEN_LIFETIME", default=14 * 86400)),
    # Rotation and revocation are ours (accounts.services, RefreshTokenRecord: jti and expiry only);
    # simplejwt's blacklist app stored whole tokens and is not installed.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": False,
    "UPDATE_LAST_LOGIN": False,  # accounts.services does it on login, not on refresh
    "AUTH_HEADER_TYPES": ("Bearer",),
    # A password change invalidates every access token issued before it.
    "CHECK_REVOKE_TOKEN": True,
}

# Personal API keys (accounts.ApiKey). Stored as HMAC-SHA256 under this key: changing it (or, without
# it, SECRET_KEY) makes every issued API key stop working.
API_KEY_HASH_KEY = env.str("API_KEY_HASH_KEY", default="") or derived_key("api-keys")
API_KEYS_MAX_PER_USER = env.int("API_KEYS_MAX_PER_USER", default=20)  # keys not revoked nor expired
# `last_used_at` is written at most this often per key (seconds), not on every request.
API_KEY_LAST_USED_INTERVAL = env.int("API_KEY_LAST_USED_INTERVAL", default=60)

SPECTACULAR_SETTINGS = {
    "TITLE": "Conduit API",
    "DESCRIPTION": (
        "AI agent platform and organization server for the Claire assistant platform. "
        "Authenticate with `POST /api/v1/auth/login` and send `Authorization: Bearer <access_token>`."
    ),
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # the default
        "assistant.surfaces.openai.schema.add_openai_paths",  # the OpenAI-compatible API's plain Django views
    ],
}

# --- HTTP, security ---------------------------------------------------------------------------
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The Content-Security-Policy header of every HTML page (config/http/middleware.py): everything from the site
# only (images also as data: URLs, which some pages' CSS uses), no inline scripts or styles. An empty value
# sends none; a looser one is the operator's to choose.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Serving (see `manage.py run`) ------------------------------------------------------------
SERVER_HOST = env.str("HOST", default="127.0.0.1")
SERVER_PORT = env.int("PORT", default=8000)
SERVER_WORKERS = env.int("WEB_CONCURRENCY", default=1)
# Pin each worker process to one CPU (`manage.py run --cpu-affinity`). A process runs Python on one
# core at a time anyway (the GIL); kept on one core, its threads hand the GIL over without moving
# caches between cores: 20-40 % more requests per process here (bench/RESULTS.md). Off by default:
# on a host shared with other pinned processes (several containers) they would pile onto the same CPUs.
SERVER_CPU_AFFINITY = env.bool("CPU_AFFINITY", default=False)
# Threads that run Django's WSGI handler for plain HTTP inside each ASGI process.
WSGI_THREADS = env.int("WSGI_THREADS", default=16)
# Threads that run the sync (database) work of turns, websockets and streaming requests in each process
# (config/threads.py). With WSGI_THREADS they bound a process's database connections:
# WSGI_THREADS + ASYNC_THREADS + 1.
ASYNC_THREADS = env.int("ASYNC_THREADS", default=4)
if ASYNC_THREADS < 1 or WSGI_THREADS < 1:
    raise ImproperlyConfigured("WSGI_THREADS and ASYNC_THREADS must be at least 1.")
# The connection's edge (config/http/edge.py, docs/deployment.md). Seconds a request's headers may take
# to arrive (from its first byte; from the connect for a connection's first request), a body may stall, a
# kept-alive connection may stay idle (keep a proxy's upstream keep-alive shorter); 0 turns one off.
HTTP_HEADER_TIMEOUT = env.float("HTTP_HEADER_TIMEOUT", default=10.0)
HTTP_BODY_TIMEOUT = env.float("HTTP_BODY_TIMEOUT", default=30.0)
HTTP_KEEPALIVE_TIMEOUT = env.float("HTTP_KEEPALIVE_TIMEOUT", default=30.0)
# Connections one client address may hold open at once, per process (behind proxies: requests in progress
# and websockets, by the X-Forwarded-For address NUM_PROXIES from the right); 0: no cap.
HTTP_MAX_CONNECTIONS_PER_CLIENT = env.int("HTTP_MAX_CONNECTIONS_PER_CLIENT", default=100)
# Request bodies: larger ones are refused (413) by their declared length before they are read, at the edge
# and by Django; the workspace upload path takes one file of WORKSPACE_MAX_FILE_BYTES (config/http/edge_paths.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)  # Django's default
# `POST /v1/chat/completions` and `POST /v1/responses` bodies (OpenAI clients send the whole
# conversation, images as base64 data URLs of up to 5 MB each, again with every request): larger
# than other paths'.
V1_CHAT_MAX_BODY_BYTES = env.int("V1_CHAT_MAX_BODY_BYTES", default=20 * 2**20)
# Form and multipart bodies: fields and files in one request (Django's defaults); more are a 400.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env.int("DATA_UPLOAD_MAX_NUMBER_FIELDS", default=1000)
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DATA_UPLOAD_MAX_NUMBER_FILES", default=100)

# --- agents -----------------------------------------------------------------------------------
# Secrets at rest (LLM API keys, integration credentials) are encrypted with Fernet. The first key
# encrypts, every key decrypts: to rotate, put a new key first, run `manage.py rotate_encryption_keys`,
# then drop the old one. Without FIELD_ENCRYPTION_KEYS one key is derived from SECRET_KEY.


def _fernet_key(hex_digest: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_digest)).decode()


FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or [_fernet_key(derived_key("fields"))]
# The settings fallback for LLM configs without a key / model / base URL of their own.
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
ANTHROPIC_MODEL = env.str("ANTHROPIC_MODEL", default="claude-sonnet-4-6")
ANTHROPIC_MAX_TOKENS = env.int("ANTHROPIC_MAX_TOKENS", default=4096)
# The same for configs with provider "openai" (any OpenAI-compatible Chat Completions endpoint). Empty
# OPENAI_BASE_URL: OpenAI's public endpoint. The organization's key goes only to the organization's URL.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4.1-mini")
# Set by `python3 dev.py run --demo` (the demo model's base URL, also in ANTHROPIC_BASE_URL): the startup
# banner and the chat's no-key error mention it. Nothing else depends on it.
DEMO_MODEL_URL = env.str("CONDUIT_DEMO_MODEL", default="")
# Hosts (`name` or `name:port`, as written in URLs) that URLs chosen by ordinary users (their LLM configs'
# base URLs, their MCP integrations' urls) may reach although they resolve to loopback, private, link-local
# or metadata addresses: see config/egress.py.
OUTBOUND_ALLOWED_HOSTS = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])
# Connections (issue 29: users' own tokens and OAuth for integrations, connections/).
# The site's public URL, for the OAuth callback when no request tells it (`manage.py connect`).
CONNECTIONS_PUBLIC_URL = env.str("CONNECTIONS_PUBLIC_URL", default="").rstrip("/")
CONNECTIONS_STATE_TTL = env.int("CONNECTIONS_STATE_TTL", default=600)  # seconds an authorization may take
CONNECTIONS_REFRESH_MARGIN = env.int("CONNECTIONS_REFRESH_MARGIN", default=60)  # refresh this long before expiry
CONNECTIONS_HTTP_CONNECT_TIMEOUT = env.float("CONNECTIONS_HTTP_CONNECT_TIMEOUT", default=5.0)
CONNECTIONS_HTTP_READ_TIMEOUT = env.float("CONNECTIONS_HTTP_READ_TIMEOUT", default=15.0)
# `manage.py init` creates this admin user when both are set (flags override).
INIT_ADMIN_EMAIL = env.str("INIT_ADMIN_EMAIL", default="")
INIT_ADMIN_PASSWORD = env.str("INIT_ADMIN_PASSWORD", default="")
INIT_ADMIN_NAME = env.str("INIT_ADMIN_NAME", default="Admin")
# Agents' custom-properties JSON Schemas, and the values given at session start, are bounded so that
# checking them can't hold a worker (see agents/validators.py): serialized size in bytes, nesting depth.
AGENT_SCHEMA_MAX_BYTES = env.int("AGENT_SCHEMA_MAX_BYTES", default=64 * 1024)
AGENT_SCHEMA_MAX_DEPTH = env.int("AGENT_SCHEMA_MAX_DEPTH", default=32)
CUSTOM_PROPERTIES_MAX_BYTES = env.int("CUSTOM_PROPERTIES_MAX_BYTES", default=64 * 1024)
CUSTOM_PROPERTIES_MAX_DEPTH = env.int("CUSTOM_PROPERTIES_MAX_DEPTH", default=32)
# Several models have a `provider` (and later other apps a `status`/`role`): name their enums.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "UserProviderEnum": "accounts.models.User.Provider",
        "LLMProviderEnum": "agents.models.LLMProviderConfig.Provider",
        "IntegrationProviderEnum": "agents.models.Integration.Provider",
        "MessageStatusEnum": "agents.models.Message.Status",
        "MessageRoleEnum": "agents.models.Message.Role",
    }
)

# --- assistant: streaming Claude ---------------------------------------------------------------
ANTHROPIC_MAX_RETRIES = env.int("ANTHROPIC_MAX_RETRIES", default=2)
ANTHROPIC_CONNECT_TIMEOUT = env.float("ANTHROPIC_CONNECT_TIMEOUT", default=5.0)
ANTHROPIC_READ_TIMEOUT = env.float("ANTHROPIC_READ_TIMEOUT", default=120.0)
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=2)
OPENAI_CONNECT_TIMEOUT = env.float("OPENAI_CONNECT_TIMEOUT", default=5.0)
OPENAI_READ_TIMEOUT = env.float("OPENAI_READ_TIMEOUT", default=120.0)
# Text deltas are written and published at most this often per stream (the first at once).
ASSISTANT_FLUSH_INTERVAL = env.float("ASSISTANT_FLUSH_INTERVAL", default=0.05)
# A streaming answer not written for this long belongs to a dead process and is closed as an error.
ASSISTANT_STALE_TURN_AFTER = env.int("ASSISTANT_STALE_TURN_AFTER", default=60)
# Every serving process looks for such answers this often (assistant/runs/sweeps.py).
ASSISTANT_STALE_SWEEP_INTERVAL = env.float("ASSISTANT_STALE_SWEEP_INTERVAL", default=ASSISTANT_STALE_TURN_AFTER / 4)
# Turns one user may have running at once, across processes; past it: `too_many_turns`.
ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = env.int("ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER", default=3)
# A tool call waiting for its user's yes is denied as expired after this many seconds (issue 28);
# every serving process looks for expired ones at the stale-turn sweep's interval.
ASSISTANT_APPROVAL_TIMEOUT = env.int("ASSISTANT_APPROVAL_TIMEOUT", default=24 * 3600)
ASSISTANT_MAX_MESSAGE_CHARS = env.int("ASSISTANT_MAX_MESSAGE_CHARS", default=100_000)
# The largest websocket message a client may send, in bytes; a bigger one closes the socket with 1009
# (daphne's limit, set by `manage.py run`; the consumer checks it too). The default fits a message of
# ASSISTANT_MAX_MESSAGE_CHARS characters even when each is sent as a 6-byte `\uXXXX` escape, plus
# 64 KiB for the rest of the frame (custom properties): 650 KiB at the defaults.
ASSISTANT_MAX_FRAME_BYTES = env.int("ASSISTANT_MAX_FRAME_BYTES", default=6 * ASSISTANT_MAX_MESSAGE_CHARS + 64 * 1024)
if ASSISTANT_MAX_FRAME_BYTES < 4 * ASSISTANT_MAX_MESSAGE_CHARS + 1024:
    raise ImproperlyConfigured(
        "ASSISTANT_MAX_FRAME_BYTES is too small for ASSISTANT_MAX_MESSAGE_CHARS: a frame must hold a message "
        "of that many characters in UTF-8 (4 bytes each at most) and its envelope, "
        f"{4 * ASSISTANT_MAX_MESSAGE_CHARS + 1024} bytes or more."
    )
# A watched turn silent this long (seconds) is checked against the database, which has every event
# before it is published: frames the channel layer lost are sent from there.
ASSISTANT_GAP_CHECK_INTERVAL = env.float("ASSISTANT_GAP_CHECK_INTERVAL", default=5.0)
# The agent that answers `POST /api/v1/claude-code/code-assistance`.
CODE_ASSISTANCE_AGENT = env.str("CODE_ASSISTANCE_AGENT", default="code-assistant")

# --- assistant: agents' tools in server-side turns (websocket, SSE) ---------------------------
# A tool call that takes longer (seconds) is abandoned: the model reads a timeout error.
ASSISTANT_TOOL_TIMEOUT = env.float("ASSISTANT_TOOL_TIMEOUT", default=120.0)
# Threads the built-in tools run on, for the whole process (assistant/tools/threads.py): never asyncio's
# default executor, which model calls and everything else share. Calls past them wait their turn.
ASSISTANT_TOOL_THREADS = env.int("ASSISTANT_TOOL_THREADS", default=4)
if ASSISTANT_TOOL_THREADS < 1:
    raise ImproperlyConfigured("ASSISTANT_TOOL_THREADS must be 1 or more.")
# MCP connections kept warm between turns, per process (assistant/tools/mcp_pool.py): one unused this long
# (seconds) is closed, and at most this many are kept (the least recently used closed first; 0: none).
ASSISTANT_MCP_IDLE_TIMEOUT = env.float("ASSISTANT_MCP_IDLE_TIMEOUT", default=300.0)
ASSISTANT_MCP_POOL_SIZE = env.int("ASSISTANT_MCP_POOL_SIZE", default=32)
if ASSISTANT_MCP_POOL_SIZE < 0 or ASSISTANT_MCP_IDLE_TIMEOUT <= 0:
    raise ImproperlyConfigured("ASSISTANT_MCP_POOL_SIZE must be 0 or more and ASSISTANT_MCP_IDLE_TIMEOUT more than 0.")
# Sessions' workspaces (agents with workspace tools, uploaded files): WORKSPACES_DIR/<session id>.
WORKSPACES_DIR = Path(env.str("WORKSPACES_DIR", default=str(BASE_DIR / "data" / "workspaces")))
WORKSPACE_MAX_FILE_BYTES = env.int("WORKSPACE_MAX_FILE_BYTES", default=10 * 1024 * 1024)  # one upload
WORKSPACE_QUOTA_BYTES = env.int("WORKSPACE_QUOTA_BYTES", default=100 * 1024 * 1024)  # a session's workspace
WORKSPACE_MAX_FILES = env.int("WORKSPACE_MAX_FILES", default=200)  # uploads per session
# Files and directories a workspace may hold: sandboxed commands past it are stopped and what they made removed.
WORKSPACE_MAX_ENTRIES = env.int("WORKSPACE_MAX_ENTRIES", default=10_000)
# run_shell in server-side turns runs only in bubblewrap (bwrap): limits of one command.
SANDBOX_BWRAP = env.str("SANDBOX_BWRAP", default="bwrap")
SANDBOX_TIMEOUT = env.int("SANDBOX_TIMEOUT", default=60)  # seconds, wall clock
SANDBOX_MEMORY_BYTES = env.int("SANDBOX_MEMORY_BYTES", default=512 * 1024 * 1024)  # address space
SANDBOX_MAX_PROCESSES = env.int("SANDBOX_MAX_PROCESSES", default=64)
SANDBOX_FILE_BYTES = env.int("SANDBOX_FILE_BYTES", default=64 * 1024 * 1024)  # largest file it may write
SANDBOX_OUTPUT_LIMIT = env.int("SANDBOX_OUTPUT_LIMIT", default=30000)  # characters kept; more kills it
# The sandbox's /tmp (and /dev/shm): a tmpfs of this size, i.e. memory, taken from SANDBOX_MEMORY_BYTES (each
# process may address the rest).
SANDBOX_TMP_BYTES = env.int("SANDBOX_TMP_BYTES", default=64 * 1024 * 1024)
if not 0 < SANDBOX_TMP_BYTES < SANDBOX_MEMORY_BYTES:
    raise ImproperlyConfigured("SANDBOX_TMP_BYTES must be more than 0 and less than SANDBOX_MEMORY_BYTES.")
# When the server runs as root, commands run as this uid/gid (one that owns no other process:
# the process limit counts per user), and the workspace is handed to it.
SANDBOX_UID = env.int("SANDBOX_UID", default=64123)

# --- lifecycle: retention, export and erasure (lifecycle/, docs/data-lifecycle.md) ---------------
# Sessions whose last activity is older than this many days are deleted with their messages, events
# and workspace files (0: kept forever); an agent's `retention_days` may keep its sessions less.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=0)
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=0)  # audit rows (both logs); 0: kept
TURN_EVENTS_RETENTION_DAYS = env.int("TURN_EVENTS_RETENTION_DAYS", default=0)  # replay events; 0: kept
# Exports (zips of a user's data) live in EXPORTS_DIR and are deleted this many hours after they are made.
EXPORTS_DIR = Path(env.str("EXPORTS_DIR", default=str(BASE_DIR / "data" / "exports")))
EXPORT_TTL_HOURS = env.int("EXPORT_TTL_HOURS", default=72)
EXPORTS_PER_DAY = env.int("EXPORTS_PER_DAY", default=5)  # exports one user may start in 24 hours
# Serving processes purge once a day (one of all replicas, by a database claim); False: only cron's purge_expired.
PURGE_ON_SERVE = env.bool("PURGE_ON_SERVE", default=True)
if min(RETENTION_DAYS, AUDIT_RETENTION_DAYS, TURN_EVENTS_RETENTION_DAYS, EXPORTS_PER_DAY) < 0 or EXPORT_TTL_HOURS < 1:
    raise ImproperlyConfigured(
        "RETENTION_DAYS, AUDIT_RETENTION_DAYS, TURN_EVENTS_RETENTION_DAYS and EXPORTS_PER_DAY must be 0 or more, "
        "EXPORT_TTL_HOURS 1 or more."
    )

# --- assistant: orchestrator CLI (manage.py run_orchestrator) ----------------------------------
AGENTS_DIR = env.str("AGENTS_DIR", default="")  # default workspace; "" = the current directory
ORCHESTRATOR_SHELL_TIMEOUT = env.int("ORCHESTRATOR_SHELL_TIMEOUT", default=120)  # seconds
ORCHESTRATOR_OUTPUT_LIMIT = env.int("ORCHESTRATOR_OUTPUT_LIMIT", default=30000)  # characters per tool result
ORCHESTRATOR_DEFAULT_MAX_TURNS = env.int("ORCHESTRATOR_DEFAULT_MAX_TURNS", default=25)
ORCHESTRATOR_MCP_START_TIMEOUT = env.float("ORCHESTRATOR_MCP_START_TIMEOUT", default=30.0)
ORCHESTRATOR_MCP_CALL_TIMEOUT = env.float("ORCHESTRATOR_MCP_CALL_TIMEOUT", default=300.0)
# The shell tool gets only these variables of our environment: never API keys or database URLs.
ORCHESTRATOR_SHELL_ENV_PASSTHROUGH = env.list(
    "ORCHESTRATOR_SHELL_ENV_PASSTHROUGH",
    default=["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TMPDIR", "TZ"],
)
ORCHESTRATOR_SHELL_ENV = {
    name: value for name in ORCHESTRATOR_SHELL_ENV_PASSTHROUGH if (value := env.str(name, default=None)) is not None
}


# --- orgproxy (organization server) and the OpenID provider -----------------------------------
# Upstream Claire API. The key is a secret: it is sent upstream only, never logged or returned.
CLAIRE_BASE_URL = env.str("CLAIRE__BASE_URL", default="https://api-core.nova-ai.de").rstrip("/")
CLAIRE_API_KEY = env.str("CLAIRE__API_KEY", default="")


def _id_list(raw: str) -> list[str]:
    """A JSON list (`["a","b"]`) or a comma-separated list (`a,b`) of ids."""
    import json

    raw = raw.strip()
    if raw.startswith("["):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"CLAIRE__ENABLED_DEVICE_ACTION_IDS is not valid JSON: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ImproperlyConfigured("CLAIRE__ENABLED_DEVICE_ACTION_IDS must be a JSON list of strings.")
        return value
    return [item.strip() for item in raw.split(",") if item.strip()]


CLAIRE_ENABLED_DEVICE_ACTION_IDS = _id_list(env.str("CLAIRE__ENABLED_DEVICE_ACTION_IDS", default=""))
CLAIRE_CONNECT_TIMEOUT = env.float("CLAIRE__CONNECT_TIMEOUT", default=3.05)
CLAIRE_READ_TIMEOUT = env.float("CLAIRE__READ_TIMEOUT", default=15.0)
# Retries of connection failures (any method: nothing reached the upstream) and of GETs that
# failed with 502/503/504 or a dropped response. POST and DELETE are never re-sent once sent.
CLAIRE_RETRIES = env.int("CLAIRE__RETRIES", default=2)
CLAIRE_POOL_SIZE = env.int("CLAIRE__POOL_SIZE", default=20)
CLAIRE_BOTS_CACHE_TTL = env.int("CLAIRE__BOTS_CACHE_TTL", default=60)

# OpenID provider (Auth0 or any provider issuing RS256 JWT access tokens with a JWKS).
AUTH0_DOMAIN = env.str("AUTH0__DOMAIN", default="").strip().removeprefix("https://").rstrip("/")
AUTH0_AUDIENCE = env.str("AUTH0__AUDIENCE", default="")
# Overrides for providers (and test servers) whose URLs don't follow Auth0's layout.
AUTH0_ISSUER = env.str("AUTH0__ISSUER", default="") or (f"https://{AUTH0_DOMAIN}/" if AUTH0_DOMAIN else "")
AUTH0_JWKS_URL = env.str("AUTH0__JWKS_URL", default="") or (
    f"{AUTH0_ISSUER.rstrip('/')}/.well-known/jwks.json" if AUTH0_ISSUER else ""
)
AUTH0_JWKS_CACHE_SECONDS = env.float("AUTH0__JWKS_CACHE_SECONDS", default=300)
# A token with an unknown `kid` refetches the JWKS at most this often (key rotation without
# letting forged `kid`s hammer the provider).
AUTH0_JWKS_REFRESH_COOLDOWN = env.float("AUTH0__JWKS_REFRESH_COOLDOWN", default=30.0)
AUTH0_TIMEOUT = env.float("AUTH0__TIMEOUT", default=5.0)
# Provider tokens verified by this process, remembered until their expiry (at most
# AUTH0__JWKS_CACHE_SECONDS) so a client's same token isn't RS256-verified on every request
# (accounts.authentication.VerifiedTokenCache). At most this many tokens; 0: verify every time.
AUTH0_VERIFIED_TOKEN_CACHE_SIZE = env.int("AUTH0__VERIFIED_TOKEN_CACHE_SIZE", default=4096)
if AUTH0_ISSUER and not AUTH0_AUDIENCE:
    raise ImproperlyConfigured(
        "AUTH0__AUDIENCE is not set. It is required with AUTH0__DOMAIN: it is the API identifier "
        "the provider puts in the access tokens' `aud` claim."
    )

# Browser login through the same provider (mozilla-django-oidc), on when a client id is set.
_OIDC_BASE = AUTH0_ISSUER.rstrip("/")
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_ENABLED = bool(AUTH0_ISSUER and OIDC_RP_CLIENT_ID)
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default=f"{_OIDC_BASE}/authorize")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default=f"{_OIDC_BASE}/oauth/token")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default=f"{_OIDC_BASE}/userinfo")
OIDC_OP_JWKS_ENDPOINT = AUTH0_JWKS_URL or "https://invalid.invalid/jwks.json"
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = AUTH0_TIMEOUT
OIDC_AUTH_REQUEST_EXTRA_PARAMS = {"audience": AUTH0_AUDIENCE} if AUTH0_AUDIENCE else {}
OIDC_AUTHENTICATE_CLASS = "accounts.oidc.AuthenticationRequestView"
OIDC_CALLBACK_CLASS = "accounts.oidc.AuthenticationCallbackView"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.insert(0, "accounts.oidc.ProviderBackend")

# CORS (django-cors-headers): comma-separated origins, or `*`; unset means no CORS headers.
_cors_origins = env.list("CORS__ALLOWED_ORIGINS", default=[])
CORS_ALLOW_ALL_ORIGINS = _cors_origins == ["*"]
CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else _cors_origins
CORS_ALLOW_CREDENTIALS = False  # bearer tokens, not cookies, cross origin
# Besides the defaults: the headers the official OpenAI SDKs send from a browser (Stainless' platform
# and retry headers; organization, project and beta headers, which /v1 ignores), X-Session-ID (a
# /v1 client continuing a session), Last-Event-ID (resuming a run stream). Listed one by one: a
# wildcard would not cover `authorization`.
CORS_ALLOW_HEADERS = (
    *cors_default_headers,
    "x-request-id",
    "x-session-id",
    "last-event-id",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-raw-response",
    "x-stainless-read-timeout",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-stream-helper",
    "x-stainless-timeout",
    "openai-beta",
    "openai-organization",
    "openai-project",
    "idempotency-key",
)
# Read by browser clients: the request id of a report, the session of an answer (/v1, run API).
CORS_EXPOSE_HEADERS = ["X-Request-ID", "X-Session-ID"]

# --- accounts: password hashing cost (accounts.hashers) ---------------------------------------
# Never below OWASP's minimum for Argon2id (m=19 MiB, t=2, p=1); each login takes this memory.
ARGON2_MEMORY_COST_KIB = env.int("ARGON2_MEMORY_COST_KIB", default=32 * 1024)
ARGON2_TIME_COST = env.int("ARGON2_TIME_COST", default=2)
ARGON2_PARALLELISM = env.int("ARGON2_PARALLELISM", default=1)
if ARGON2_MEMORY_COST_KIB < 19 * 1024 or ARGON2_TIME_COST < 2 or ARGON2_PARALLELISM < 1:
    raise ImproperlyConfigured(
        "Argon2 parameters below OWASP's minimum (ARGON2_MEMORY_COST_KIB >= 19456, ARGON2_TIME_COST >= 2, "
        "ARGON2_PARALLELISM >= 1)."
    )

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# `text` (readable lines) or `json` (one JSON object a line: observability/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="text").lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be `text` or `json`.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.http.request_ids.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "observability.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "daphne": {"level": "WARNING"},
    },
}

# --- usage and budgets (usage/) ---
# Monthly budgets per user (calendar months, UTC), overridable per user and per group in admin;
# 0 = unlimited. The cost budget is in the currency of the LLM configs' prices.
BUDGET_USER_MONTHLY_TOKENS = env.int("BUDGET_USER_MONTHLY_TOKENS", default=0)
BUDGET_USER_MONTHLY_COST = Decimal(env.str("BUDGET_USER_MONTHLY_COST", default="0") or "0")
# Prices per million tokens of calls without an LLM config (ANTHROPIC_* settings); empty: unknown.
PRICE_DEFAULT_INPUT_PER_MTOK = env.str("PRICE_DEFAULT_INPUT_PER_MTOK", default="")
PRICE_DEFAULT_OUTPUT_PER_MTOK = env.str("PRICE_DEFAULT_OUTPUT_PER_MTOK", default="")
PRICE_DEFAULT_CACHE_READ_PER_MTOK = env.str("PRICE_DEFAULT_CACHE_READ_PER_MTOK", default="")
PRICE_DEFAULT_CACHE_WRITE_PER_MTOK = env.str("PRICE_DEFAULT_CACHE_WRITE_PER_MTOK", default="")
