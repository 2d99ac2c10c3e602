"""Atelier settings: one module, read from the environment.

With no environment at all this is the embedded default (`make run`): SQLite under
`var/`, files under `var/media`, a Celery worker on a filesystem broker under `var/broker`,
console email, offline local provider.
`DJANGO_ENV=production` selects production; it differs only by environment values, and
integrations switch on by the presence of their keys.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ATELIER_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """Strict boolean: anything but the usual spellings stops start-up instead of guessing."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SystemExit(f"atelier: {name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise SystemExit(f"atelier: DJANGO_ENV={DJANGO_ENV!r} must be 'development' or 'production'")
PRODUCTION = DJANGO_ENV == "production"


def required(name: str) -> str:
    """In production a missing value stops start-up with one line naming it."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(f"atelier: {name} must be set when DJANGO_ENV=production")
    return value


if PRODUCTION:
    SECRET_KEY = required("SECRET_KEY")
    ALLOWED_HOSTS = [h.strip() for h in required("ALLOWED_HOSTS").split(",") if h.strip()]
    required("DATABASE_URL")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-key-only-for-the-embedded-default-0123456789")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise SystemExit("atelier: DEBUG must be off when DJANGO_ENV=production")

SITE_NAME = "Atelier"
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Proxies of ours in front of the app that append to X-Forwarded-For (TLS proxy, load balancer).
# 0: none, the header is ignored. Rate limits take the client address by this count (config/net.py).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise SystemExit(f"atelier: TRUSTED_PROXY_COUNT={TRUSTED_PROXY_COUNT} must be 0 or more")
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT

# --- applications -------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.forms",
    "django_htmx",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "ninja",
    "oauth2_provider",
    "accounts",
    "generation",
    "billing",
    "privacy",
    "apiv1",
    "atelier_oauth",
    "mcpserver",
    "developers",
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
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.CompleteProfileMiddleware",
    "privacy.cookies.AnalyticsMiddleware",
    # Last, so it sees exceptions from the views first: problem+json for /api/ and /mcp.
    "config.api_errors.ProgramErrorsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "config.context_processors.site",
                "privacy.cookies.context",
                "privacy.policy.context",
            ],
        },
    },
]

FORM_RENDERER = "config.forms.FormRenderer"

# --- data ---------------------------------------------------------------------------

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'atelier.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default writes from two processes (web and worker). WAL lets readers and one
    # writer work side by side; IMMEDIATE takes the write lock when a transaction begins, so two
    # transactions never both read and then deadlock on upgrading ("database is locked" at once,
    # which no timeout cures); the timeout makes a writer wait its turn instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Fails open while Redis is down (logged), so sign-in keeps working: see config/cache.py.
    CACHES = {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- storage: local files by default, private S3 when a bucket is configured -------

MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"]
if not PRODUCTION:
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing

AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": None,  # objects stay private; readers get presigned URLs
            "querystring_auth": True,
            "querystring_expire": env.int("AWS_QUERYSTRING_EXPIRE", default=300),
            "file_overwrite": False,
            "signature_version": "s3v4",
        },
    }
    # Browsers may reach the bucket at another address than the servers (MinIO in compose).
    AWS_S3_PUBLIC_ENDPOINT_URL = env.str("AWS_S3_PUBLIC_ENDPOINT_URL", default="")
    # Pages show presigned URLs straight from the bucket: the CSP must allow its origin.
    _endpoint = AWS_S3_PUBLIC_ENDPOINT_URL or DEFAULT_STORAGE["OPTIONS"]["endpoint_url"]
    _region = DEFAULT_STORAGE["OPTIONS"]["region_name"]
    if _endpoint:
        _parts = _endpoint.split("/")
        MEDIA_ORIGINS = ["/".join(_parts[:3])]
    else:
        MEDIA_ORIGINS = [f"https://{AWS_STORAGE_BUCKET_NAME}.s3.amazonaws.com"]
        if _region:
            MEDIA_ORIGINS.append(f"https://{AWS_STORAGE_BUCKET_NAME}.s3.{_region}.amazonaws.com")
else:
    AWS_S3_PUBLIC_ENDPOINT_URL = ""
    MEDIA_ORIGINS: list[str] = []
    DEFAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},
    }
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- accounts and sign-in (django-allauth) -----------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
# After sign-in (or sign-up) people land where they make things; `next` wins when given.
LOGIN_REDIRECT_URL = "generation:create"
ACCOUNT_LOGOUT_REDIRECT_URL = "landing"

ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Atelier] "
# Links in emails (verification, password reset) and OAuth callbacks use SITE_URL's scheme.
ACCOUNT_DEFAULT_HTTP_PROTOCOL = SITE_URL.split("://", 1)[0] if "://" in SITE_URL else "https"
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_RATE_LIMITS = {
    # allauth's defaults, stated so they are visible and tunable in one place.
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
ACCOUNT_FORMS = {
    "signup": "accounts.forms.SignupForm",
    "login": "accounts.forms.LoginForm",
    "change_password": "accounts.forms.ChangePasswordForm",
    "reset_password_from_key": "accounts.forms.ResetPasswordKeyForm",
}
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_FORMS = {"signup": "accounts.forms.SocialSignupForm"}
# A new Google user always sees the short completion form (age gate + policy) first;
# the account is only created when they submit it.
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False

GOOGLE_CLIENT_ID = env.str("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env.str("GOOGLE_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        # Configured from the environment; no SocialApp rows needed.
        "APPS": (
            [{"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""}]
            if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET
            else []
        ),
        "SCOPE": ["profile", "email"],
        "AUTH_PARAMS": {"access_type": "online", "prompt": "select_account"},
        "OAUTH_PKCE_ENABLED": True,
    }
}

# Age gate and policy. The policy itself is versioned data (privacy.PolicyVersion, published by
# staff); PRIVACY_POLICY_VERSION names the built-in first version a fresh database is seeded with.
MINIMUM_AGE = 13
PRIVACY_POLICY_VERSION = env.str("PRIVACY_POLICY_VERSION", default="2026-11-01")

# --- privacy: retention periods and limits (every period a setting; see privacy/tasks) --------

# Exports: kept this long, then beat deletes the ZIP; one per person per this many hours.
PRIVACY_EXPORT_TTL_DAYS = env.int("PRIVACY_EXPORT_TTL_DAYS", default=7)
PRIVACY_EXPORT_MIN_INTERVAL_HOURS = env.int("PRIVACY_EXPORT_MIN_INTERVAL_HOURS", default=24)
# How long a signed export/download link stays valid once the owner opens it.
PRIVACY_EXPORT_LINK_SECONDS = env.int("PRIVACY_EXPORT_LINK_SECONDS", default=300)
# Error details and provider logs of finished jobs.
PRIVACY_RETENTION_ERROR_DETAILS_DAYS = env.int("PRIVACY_RETENTION_ERROR_DETAILS_DAYS", default=30)
# Stored webhook payloads (Replicate and Stripe) once processed.
PRIVACY_RETENTION_WEBHOOK_PAYLOADS_DAYS = env.int("PRIVACY_RETENTION_WEBHOOK_PAYLOADS_DAYS", default=30)
# IP addresses in the activity log (the device label stays).
PRIVACY_RETENTION_IP_DAYS = env.int("PRIVACY_RETENTION_IP_DAYS", default=30)
# Input images of finished jobs (the outputs stay as long as the person keeps them).
PRIVACY_RETENTION_INPUTS_DAYS = env.int("PRIVACY_RETENTION_INPUTS_DAYS", default=90)
# Erasure receipts for staff (no personal data on them).
PRIVACY_RETENTION_ERASURE_RECEIPTS_DAYS = env.int("PRIVACY_RETENTION_ERASURE_RECEIPTS_DAYS", default=365 * 3)
# Ledger entries and payments of erased accounts, kept anonymized for tax law (years).
PRIVACY_TAX_RECORDS_YEARS = env.int("PRIVACY_TAX_RECORDS_YEARS", default=10)
# Where people write to about privacy.
PRIVACY_CONTACT_EMAIL = env.str("PRIVACY_CONTACT_EMAIL", default="privacy@atelier.local")

# --- email ----------------------------------------------------------------------------

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Atelier <hello@atelier.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery ---------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# A broker server (Redis): `make worker` and `make beat` run beside the web server.
BROKER_CONFIGURED = CELERY_BROKER_URL not in {"", "memory://"}
# Without one, development still runs jobs in the background, as production does: kombu's
# filesystem transport (message files under var/broker/, no server) and one worker with beat
# inside it, which `make run` starts beside the web server (config/devserver.py).
# CELERY_TASK_ALWAYS_EAGER=true opts out: tasks then run inline, in the web request that queued
# them. Production without a broker keeps inline tasks (nothing there starts a worker for it).
# The test suite runs tasks inline through its fixture (tests/fixtures.py), whatever this says.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=PRODUCTION and not BROKER_CONFIGURED)
EMBEDDED_BROKER = not BROKER_CONFIGURED and not CELERY_TASK_ALWAYS_EAGER
EMBEDDED_BROKER_DIR = VAR_DIR / "broker"
if EMBEDDED_BROKER:
    CELERY_BROKER_URL = "filesystem://localhost/"  # the host is ignored; naming it keeps kombu quiet
elif not BROKER_CONFIGURED:
    CELERY_BROKER_URL = "memory://"
# Inline tasks behave like a worker's: an error is recorded on the job (and logged), it does not
# turn the web request that queued it into a 500 page; Celery's retries run inline too.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Time limits are set once here; the visibility timeout must outlast the longest job,
# or Redis redelivers a task that is still running.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=15 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=16 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 60 * 60)}
if EMBEDDED_BROKER:
    # Producers write and the worker reads the same folder. The transport hands a message over by
    # moving its file away: there is no visibility timeout. A worker stopped normally puts its
    # unfinished tasks back; one killed with -9 loses them, and beat's stuck sweeper
    # (GENERATION_STUCK_AFTER) then fails and refunds those jobs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(EMBEDDED_BROKER_DIR / "queue"),
        "data_folder_out": str(EMBEDDED_BROKER_DIR / "queue"),
        "control_folder": str(EMBEDDED_BROKER_DIR / "control"),
        "polling_interval": env.float("CELERY_FILESYSTEM_POLLING_INTERVAL", default=0.25),
    }
    for _folder in ("queue", "control"):
        (EMBEDDED_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    # Remote control (celery inspect/control) broadcasts to a mailbox file per worker name, which
    # would pile up across restarts; nothing in Atelier uses it.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {
    "generation-poll-running": {"task": "generation.tasks.poll_running_generations", "schedule": 30.0},
    "generation-fail-stuck": {"task": "generation.tasks.fail_stuck_generations", "schedule": 300.0},
    "billing-requeue-stripe-events": {"task": "billing.tasks.requeue_stripe_events", "schedule": 300.0},
    "generation-sweep-pending-uploads": {"task": "generation.tasks.sweep_pending_uploads", "schedule": 3600.0},
    "privacy-expire-exports": {"task": "privacy.tasks.export.expire_exports", "schedule": 3600.0},
    "privacy-retention": {"task": "privacy.tasks.retention.apply_retention", "schedule": 6 * 3600.0},
    "privacy-resume-erasures": {"task": "privacy.tasks.erasure.resume_erasures", "schedule": 900.0},
    "apiv1-sweep-idempotency-records": {"task": "apiv1.tasks.sweep_idempotency_records", "schedule": 3600.0},
    "developers-deliver-webhooks": {"task": "developers.tasks.deliver_due_webhooks", "schedule": 30.0},
}

# --- security headers ----------------------------------------------------------------

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:", "https://*.googleusercontent.com", *MEDIA_ORIGINS],
        "connect-src": ["'self'", *MEDIA_ORIGINS],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'", "https://accounts.google.com"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- i18n -----------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": sys.stderr}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # The MCP SDK logs three INFO lines per stateless /mcp request (manager start/stop, session end).
        "mcp.server.streamable_http_manager": {"level": "WARNING"},
        "mcp.server.streamable_http": {"level": "WARNING"},
    },
}

# --- product ---------------------------------------------------------------------------

# Inputs people give us (uploads and image URLs) and outputs we copy from the provider.
INPUT_MAX_BYTES = env.int("INPUT_MAX_BYTES", default=10 * 1024 * 1024)
INPUT_MAX_PIXELS = env.int("INPUT_MAX_PIXELS", default=40_000_000)  # decompression-bomb limit
INPUT_MAX_SIDE = env.int("INPUT_MAX_SIDE", default=2048)  # inputs are re-encoded no larger than this
INPUT_URL_TIMEOUT = env.float("INPUT_URL_TIMEOUT", default=10.0)
# The whole link fetch (connect, TLS, headers, body, redirects) ends within this, whatever the per-step
# timeout: a fetch holds a web worker while it runs, and each person may run one at a time.
INPUT_URL_DEADLINE = env.float("INPUT_URL_DEADLINE", default=12.0)
INPUT_URL_MAX_REDIRECTS = 3
# host:port pairs the SSRF guard lets through although private (the test suite's local servers only).
INPUT_URL_ALLOWED_PRIVATE_HOSTS: list[str] = env.list("INPUT_URL_ALLOWED_PRIVATE_HOSTS", default=[])
# Generation submits allowed per person and per client address (config.net.client_ip; IPv6 by /64),
# counted in the shared cache by django-ratelimit; rates like "30/m" (s, m, h, d).
GENERATION_SUBMIT_RATE_PER_USER = env.str("GENERATION_SUBMIT_RATE_PER_USER", default="30/m")
GENERATION_SUBMIT_RATE_PER_IP = env.str("GENERATION_SUBMIT_RATE_PER_IP", default="60/m")

# --- assistants' door (issue 12): API v1, OAuth 2.1, MCP, developer webhooks -----------------------

# Prompts and parameters of generations made through a GPT Action or an MCP client are blanked
# this many days after they were asked for (privacy retention), unless the person keeps them.
ASSISTANT_PROMPT_RETENTION_DAYS = env.int("ASSISTANT_PROMPT_RETENTION_DAYS", default=30)
# django-oauth-toolkit: authorization code + PKCE S256 only, rotating refresh tokens.
OAUTH2_PROVIDER = {
    "SCOPES": {
        "read": "See your account, credits and generations",
        "generate": "Start generations that spend your credits",
    },
    "DEFAULT_SCOPES": ["read"],
    "PKCE_REQUIRED": True,
    "ALLOWED_GRANT_TYPES": ["authorization_code", "refresh_token"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("OAUTH_ACCESS_TOKEN_SECONDS", default=3600),
    "REFRESH_TOKEN_EXPIRE_SECONDS": env.int("OAUTH_REFRESH_TOKEN_SECONDS", default=60 * 60 * 24 * 30),
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REQUEST_APPROVAL_PROMPT": "force",
    # RFC 9700 (OAuth 2.0 Security BCP) behaviour now rather than at DOT 4.0: no implicit or password
    # grant, S256 only, tokens never in the query string, `iss` in the authorization response,
    # tokens stored hashed; and misconfiguration fails `check --deploy`.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # `http` stays allowed for native MCP clients' loopback callbacks (RFC 8252: Claude Code,
    # Cursor, the MCP SDK); registration refuses http for any host but 127.0.0.1/[::1]/localhost
    # (atelier_oauth), hence W008 is silenced below.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
    # OAuth (atelier_oauth): the resource a token is for must be ours (RFC 8707); the issuer in
    # metadata and in the `iss` of authorization responses (RFC 9207) is SITE_URL.
    "OAUTH2_VALIDATOR_CLASS": "atelier_oauth.validators.AtelierOAuth2Validator",
    "OIDC_ISS_ENDPOINT": SITE_URL,
    # RFC 7591 registration is open (MCP clients register themselves; nothing is granted without a
    # person's consent), rate-limited per address by atelier_oauth.
    "DCR_ENABLED": True,
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    # What RFC 8414 metadata advertises: exactly what the server accepts.
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "client_secret_post", "none"],
}
SILENCED_SYSTEM_CHECKS = ["oauth2_provider.W008"]
# OAuth: dynamic client registrations allowed per client address (config.net.client_ip; IPv6 by
# /64), per IPv6 /48, and from everyone together.
OAUTH_REGISTER_RATE = env.str("OAUTH_REGISTER_RATE", default="10/h")
OAUTH_REGISTER_RATE_IPV6_48 = env.str("OAUTH_REGISTER_RATE_IPV6_48", default="30/h")
OAUTH_REGISTER_RATE_GLOBAL = env.str("OAUTH_REGISTER_RATE_GLOBAL", default="200/h")
# OAuth: client ids allowed to skip PKCE (none by default). Only for the staff-created confidential
# GPT Action client, and only if ChatGPT turns out not to send a code_challenge.
OAUTH_PKCE_EXEMPT_CLIENT_IDS: list[str] = env.list("OAUTH_PKCE_EXEMPT_CLIENT_IDS", default=[])
# OAuth: self-registered clients never connected to anyone are removed after this many days, by
# beat's hourly sweep, which also clears expired tokens and codes; registration answers 503 while
# OAUTH_UNUSED_CLIENT_MAX of them are waiting.
OAUTH_UNUSED_CLIENT_DAYS = env.int("OAUTH_UNUSED_CLIENT_DAYS", default=1)
OAUTH_UNUSED_CLIENT_MAX = env.int("OAUTH_UNUSED_CLIENT_MAX", default=5000)
CELERY_BEAT_SCHEDULE["oauth-housekeeping"] = {"task": "atelier_oauth.tasks.oauth_housekeeping", "schedule": 3600.0}

# API v1
# Calls allowed per API key or OAuth token, and per person over all their credentials and the
# session, counted in the shared cache by django-ratelimit (fixed windows): 429 with Retry-After.
API_RATE_PER_KEY = env.str("API_RATE_PER_KEY", default="120/m")
API_RATE_PER_USER = env.str("API_RATE_PER_USER", default="240/m")
# How long an Idempotency-Key replays its first answer (then beat sweeps it and the key is free).
API_IDEMPOTENCY_HOURS = env.int("API_IDEMPOTENCY_HOURS", default=24)
# How long the signed 3D viewer link in an API answer opens without sign-in.
API_VIEWER_LINK_SECONDS = env.int("API_VIEWER_LINK_SECONDS", default=3600)
# Requests one person may hold open at once waiting for a job (Prefer: wait, MCP tools); past it a
# call answers at once with the job as it stands (apiv1/holds.py).
API_WAITS_PER_USER = env.int("API_WAITS_PER_USER", default=2)

# Developer webhooks
# Completion webhooks developers register on /developers/webhooks/ (developers app): at most this
# many endpoints each; a whole attempt (connect, TLS, headers) ends DEVELOPER_WEBHOOK_TIMEOUT seconds
# after it starts (wall clock); a failed delivery is tried again after each of these delays (seconds,
# about a day in all), then marked failed.
DEVELOPER_WEBHOOK_MAX_ENDPOINTS = env.int("DEVELOPER_WEBHOOK_MAX_ENDPOINTS", default=5)
DEVELOPER_WEBHOOK_TIMEOUT = env.float("DEVELOPER_WEBHOOK_TIMEOUT", default=10.0)
# "Send test event" and "Resend" per person (django-ratelimit rate: each makes Atelier POST to a URL
# the person chose, at no cost to them).
DEVELOPER_WEBHOOK_TEST_RATE = env.str("DEVELOPER_WEBHOOK_TEST_RATE", default="10/h")
DEVELOPER_WEBHOOK_RETRY_SCHEDULE: list[int] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
# host:port pairs the SSRF guard lets through although private, over plain http too (the test suite's
# local receivers only).
DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS: list[str] = env.list("DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS", default=[])
# Delivery log rows (payloads hold ids, never prompts) are deleted this long after they ended.
DEVELOPER_WEBHOOK_LOG_DAYS = env.int("DEVELOPER_WEBHOOK_LOG_DAYS", default=30)

# Replicate: switched on by the token. Webhooks go to WEBHOOK_BASE_URL (default SITE_URL).
REPLICATE_API_TOKEN = env.str("REPLICATE_API_TOKEN", default="")
REPLICATE_BASE_URL = env.str("REPLICATE_BASE_URL", default="")
REPLICATE_TIMEOUT = env.float("REPLICATE_TIMEOUT", default=30.0)
REPLICATE_WEBHOOK_SECRET = env.str("REPLICATE_WEBHOOK_SECRET", default="")
REPLICATE_WEBHOOK_TOLERANCE = 300  # seconds; older or future-dated deliveries are refused
WEBHOOK_BASE_URL = env.str("WEBHOOK_BASE_URL", default="")
# Replicate posts whole prediction bodies (prompts, output links) there: https only. Plain http is
# let through for a loopback host alone (a local Replicate stand-in, the bench): nothing leaves the machine.
_webhook_base = urlsplit(WEBHOOK_BASE_URL)
if WEBHOOK_BASE_URL and not (
    _webhook_base.scheme == "https"
    # the host as parsed, not a prefix: http://localhost:1@evil.example is evil.example
    or (_webhook_base.scheme == "http" and _webhook_base.hostname in ("127.0.0.1", "localhost", "::1"))
):
    raise SystemExit(f"atelier: WEBHOOK_BASE_URL={WEBHOOK_BASE_URL!r} must start with https:// (Replicate posts to it)")
WEBHOOK_BASE_URL = WEBHOOK_BASE_URL or (SITE_URL if SITE_URL.startswith("https://") else "")

# The generation pipeline.
# Without webhooks the worker polls this long, then hands off to the beat poller; with webhooks
# (WEBHOOK_BASE_URL set) it waits only GENERATION_WEBHOOK_INLINE_WAIT.
GENERATION_INLINE_WAIT = env.float("GENERATION_INLINE_WAIT", default=120.0)
GENERATION_WEBHOOK_INLINE_WAIT = env.float("GENERATION_WEBHOOK_INLINE_WAIT", default=0.0)
# Between polls the worker waits a tenth of the time the job has run, within POLL_INTERVAL ..
# POLL_MAX_INTERVAL: quick results are seen quickly, long 3D jobs cost about one request a second.
GENERATION_POLL_INTERVAL = env.float("GENERATION_POLL_INTERVAL", default=0.1)
GENERATION_POLL_MAX_INTERVAL = env.float("GENERATION_POLL_MAX_INTERVAL", default=1.0)
GENERATION_STUCK_AFTER = env.int("GENERATION_STUCK_AFTER", default=30 * 60)  # seconds before a job is failed
GENERATION_MAX_RETRIES = env.int("GENERATION_MAX_RETRIES", default=5)
GENERATION_RECENT_LIMIT = 8
PROVIDER_INPUT_URL_TTL = 3600  # presigned URL of our input copy handed to the provider
LOCAL_FILE_URL_TTL = 600  # signed URLs for local-file storage
FREE_CREDITS_ON_SIGNUP = env.int("FREE_CREDITS_ON_SIGNUP", default=25)
OUTPUT_MAX_BYTES = env.int("OUTPUT_MAX_BYTES", default=200 * 1024 * 1024)
# AI marking (generation/marking.py): every stored output carries IPTC XMP; images also get a
# signed C2PA manifest when a certificate chain (PEM, leaf first) and its ES256 (P-256) private
# key are set. Without them nothing is signed (and nothing pretends to be).
C2PA_CERT_FILE = env.str("C2PA_CERT_FILE", default="")
C2PA_KEY_FILE = env.str("C2PA_KEY_FILE", default="")

# Stripe: payments switch on with the secret key. STRIPE_API_BASE points the SDK elsewhere (tests).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_WEBHOOK_TOLERANCE = 300  # seconds; older signatures are refused
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", default=20.0)
PAYMENTS_ENABLED = bool(STRIPE_SECRET_KEY)

DEMO_USER_EMAIL = "demo@atelier.local"
DEMO_USER_PASSWORD = env.str("DEMO_USER_PASSWORD", default="atelier-demo-2026")
