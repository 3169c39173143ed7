"""Django settings, all from ``FLEET_*`` environment variables (plus DATABASE_URL and
CELERY_BROKER_URL); see the README's configuration table. Nothing set gives the
embedded default: SQLite and a file-system Celery broker under ``FLEET_DATA_DIR``.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

from fleet.conf import Env, persistent_secret

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

DATA_DIR: Path = env.path("FLEET_DATA_DIR", BASE_DIR / "var")
DEBUG = env.bool("FLEET_DEBUG", False)
SECRET_KEY = env.str("FLEET_SECRET_KEY") or persistent_secret(
    DATA_DIR / "secret-key", lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env.list("FLEET_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("FLEET_CSRF_TRUSTED_ORIGINS", [])

# Fernet keys for cluster credentials at rest; the first encrypts, all decrypt (rotation).
FLEET_CREDENTIALS_KEYS: list[str] = env.list("FLEET_CREDENTIALS_KEYS", []) or [
    persistent_secret(DATA_DIR / "credentials.key", lambda: Fernet.generate_key().decode())
]
# Directories from which clusters-as-code files may read referenced secrets.
FLEET_SECRET_FILE_DIRS: list[str] = env.list("FLEET_SECRET_FILE_DIRS", [])
FLEET_CLUSTERS_DIR: Path = env.path("FLEET_CLUSTERS_DIR", BASE_DIR / "clusters")
FLEET_MAX_REQUEST_BYTES = env.int("FLEET_MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)

DATABASES = {"default": env.database("DATABASE_URL", DATA_DIR / "fleet.sqlite3")}

CELERY_BROKER_URL = env.broker("CELERY_BROKER_URL", "filesystem://")
CELERY_EMBEDDED_BROKER = CELERY_BROKER_URL == "filesystem://"
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # kombu keeps its exchange tables here; its default is ./control in the working dir.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    if CELERY_EMBEDDED_BROKER
    else {"visibility_timeout": 3600}
)
if CELERY_EMBEDDED_BROKER:
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
# A running deployment whose worker sent no heartbeat for this long is resumed elsewhere.
FLEET_ROLLOUT_HEARTBEAT_TIMEOUT = env.int("FLEET_ROLLOUT_HEARTBEAT_TIMEOUT", 120, minimum=4)
FLEET_ROLLOUT_SWEEP_SECONDS = env.int("FLEET_ROLLOUT_SWEEP_SECONDS", 30, minimum=1)
FLEET_ROLLOUT_MAX_ATTEMPTS = env.int("FLEET_ROLLOUT_MAX_ATTEMPTS", 3, minimum=1)
# Audit: the Ed25519 key that signs checkpoints and bundles (base64 of its 32-byte seed;
# `manage.py audit keygen` makes one), old public keys still trusted, and retention.
FLEET_AUDIT_SIGNING_KEY = env.key("FLEET_AUDIT_SIGNING_KEY", 32) or persistent_secret(
    DATA_DIR / "audit-signing.key", lambda: base64.b64encode(secrets.token_bytes(32)).decode())
FLEET_AUDIT_SIGNING_KEY_GENERATED = not env.environ.get("FLEET_AUDIT_SIGNING_KEY")
FLEET_AUDIT_PREVIOUS_KEYS: list[str] = env.list("FLEET_AUDIT_PREVIOUS_KEYS", [])
FLEET_AUDIT_CHECKPOINT_EVERY = env.int("FLEET_AUDIT_CHECKPOINT_EVERY", 1000, minimum=1)
FLEET_AUDIT_CHECKPOINT_SECONDS = env.int("FLEET_AUDIT_CHECKPOINT_SECONDS", 3600, minimum=60)
# Processes that verify a long chain (PostgreSQL), each over its own segment.
FLEET_AUDIT_VERIFY_WORKERS = env.int("FLEET_AUDIT_VERIFY_WORKERS", min(4, os.cpu_count() or 1), minimum=1)
FLEET_AUDIT_KEEP_DAYS = env.int("FLEET_AUDIT_KEEP_DAYS", 0)  # 0: every event stays in the database
FLEET_AUDIT_ARCHIVE_DIR: Path = env.path("FLEET_AUDIT_ARCHIVE_DIR", DATA_DIR / "audit-archive")
# Drift: how often each cluster is scanned (its own interval overrides), the jitter that
# spreads scans out (a fraction of the interval, either side), how many clusters one
# process scans at once, history kept, and when recurring drift makes a cluster contested.
FLEET_DRIFT_INTERVAL = env.int("FLEET_DRIFT_INTERVAL", 180, minimum=10)
FLEET_DRIFT_JITTER = env.int("FLEET_DRIFT_JITTER_PERCENT", 20) / 100
FLEET_DRIFT_TICK_SECONDS = env.int("FLEET_DRIFT_TICK_SECONDS", 15, minimum=1)
FLEET_DRIFT_MAX_PER_TICK = env.int("FLEET_DRIFT_MAX_PER_TICK", 2000, minimum=1)
FLEET_DRIFT_SCAN_PARALLEL = env.int("FLEET_DRIFT_SCAN_PARALLEL", 32, minimum=1)
FLEET_DRIFT_HISTORY_DAYS = env.int("FLEET_DRIFT_HISTORY_DAYS", 30, minimum=1)
FLEET_DRIFT_CONTEST_COUNT = env.int("FLEET_DRIFT_CONTEST_COUNT", 3, minimum=1)
FLEET_DRIFT_CONTEST_MINUTES = env.int("FLEET_DRIFT_CONTEST_MINUTES", 10, minimum=1)
# Ignore and mode rules as code, loaded by `manage.py drift sync-rules` (they own the rules
# marked source=code; the API edits the others).
FLEET_DRIFT_RULES_FILE: Path = env.path("FLEET_DRIFT_RULES_FILE", BASE_DIR / "deploy" / "drift-rules.yaml")
# Cluster audit (API servers' own audit events): retention, partitions made ahead (PostgreSQL),
# the largest batch the webhook may send, the largest request object kept, and the identities
# that are Kubernetes' own components (fnmatch patterns), whose writes are not "outside GitOps".
FLEET_CLUSTER_AUDIT_KEEP_DAYS = env.int("FLEET_CLUSTER_AUDIT_KEEP_DAYS", 90)  # 0: keep every event
FLEET_CLUSTER_AUDIT_PARTITIONS_AHEAD = env.int("FLEET_CLUSTER_AUDIT_PARTITIONS_AHEAD", 7, minimum=1)
FLEET_CLUSTER_AUDIT_MAX_BATCH_BYTES = env.int("FLEET_CLUSTER_AUDIT_MAX_BATCH_BYTES", 16 * 1024 * 1024, minimum=1024)
FLEET_CLUSTER_AUDIT_MAX_OBJECT_BYTES = env.int("FLEET_CLUSTER_AUDIT_MAX_OBJECT_BYTES", 64 * 1024, minimum=0)
FLEET_CLUSTER_AUDIT_SYSTEM_USERS: list[str] = env.list("FLEET_CLUSTER_AUDIT_SYSTEM_USERS", [
    "system:kube-controller-manager", "system:kube-scheduler", "system:apiserver", "system:node:*",
    "system:serviceaccount:kube-system:*"])
CELERY_BEAT_SCHEDULE = {
    "verify-audit-chain": {"task": "audit.verify_chain", "schedule": 3600.0},
    "checkpoint-audit-chain": {"task": "audit.checkpoint", "schedule": float(FLEET_AUDIT_CHECKPOINT_SECONDS)},
    "archive-audit-events": {"task": "audit.archive", "schedule": 86400.0},
    "sweep-rollouts": {"task": "rollouts.sweep", "schedule": float(FLEET_ROLLOUT_SWEEP_SECONDS)},
    "probe-fleet": {"task": "inventory.probe_fleet", "schedule": 60.0},
    "schedule-drift-scans": {"task": "drift.schedule", "schedule": float(FLEET_DRIFT_TICK_SECONDS)},
    "prune-drift-history": {"task": "drift.prune_history", "schedule": 86400.0},
    "cluster-audit-maintain": {"task": "clusteraudit.maintain", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = env.bool("FLEET_TASKS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True  # task outcomes live in the database, never in a result backend
CELERY_TASK_ACKS_LATE = True
# Celery's Django fix-up closes the database connection around every task unless this is
# set; fleet.celery recycles connections as Django does per request (CONN_MAX_AGE) instead.
CELERY_DB_REUSE_MAX = 2**31
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True

# GitOps: per-cluster workspaces (reused clones) and limits on what git and renders may take.
FLEET_WORKSPACE_DIR: Path = env.path("FLEET_WORKSPACE_DIR", DATA_DIR / "workspaces")
FLEET_WORKSPACE_LOCK_TIMEOUT = env.int("FLEET_WORKSPACE_LOCK_TIMEOUT", 300)
FLEET_GIT_TIMEOUT = env.int("FLEET_GIT_TIMEOUT", 300, minimum=1)
# Local repositories (absolute paths, file://) are allowed only inside these directories;
# empty: none. Remotes are https or ssh (fleet.core.repourl).
FLEET_GIT_LOCAL_ROOTS: list[str] = env.list("FLEET_GIT_LOCAL_ROOTS", [str(DATA_DIR / "repos")])
# Mirrors of repositories the policy gate renders by ref: how many are kept, how large one may be.
FLEET_MIRROR_MAX = env.int("FLEET_MIRROR_MAX", 32, minimum=1)
FLEET_MIRROR_MAX_BYTES = env.int("FLEET_MIRROR_MAX_BYTES", 1024 * 1024 * 1024, minimum=1024)
# Repositories (URL prefixes) policy/evaluate may render besides known channels' and clusters'.
FLEET_POLICY_EVALUATE_REPOS: list[str] = env.list("FLEET_POLICY_EVALUATE_REPOS", [])
FLEET_GIT_KNOWN_HOSTS: Path = env.path("FLEET_GIT_KNOWN_HOSTS", DATA_DIR / "ssh_known_hosts")
FLEET_MIGRATION_TIMEOUT = env.int("FLEET_MIGRATION_TIMEOUT", 300, minimum=1)
FLEET_RENDER_TIMEOUT = env.int("FLEET_RENDER_TIMEOUT", 60, minimum=1)
FLEET_RENDER_MAX_FILE_BYTES = env.int("FLEET_RENDER_MAX_FILE_BYTES", 1024 * 1024, minimum=1024)
FLEET_RENDER_MAX_TOTAL_BYTES = env.int("FLEET_RENDER_MAX_TOTAL_BYTES", 64 * 1024 * 1024, minimum=1024)
FLEET_RENDER_MAX_FILES = env.int("FLEET_RENDER_MAX_FILES", 10_000, minimum=1)
FLEET_RENDER_MAX_OUTPUT_BYTES = env.int("FLEET_RENDER_MAX_OUTPUT_BYTES", 32 * 1024 * 1024, minimum=1024)
FLEET_RENDER_MAX_OBJECTS = env.int("FLEET_RENDER_MAX_OBJECTS", 5_000, minimum=1)
FLEET_RENDER_ALLOW_REMOTE_BASES = env.bool("FLEET_RENDER_ALLOW_REMOTE_BASES", False)

# The policy engine: an OPA server Fleet runs itself (embedded default) or one at FLEET_OPA_URL.
FLEET_POLICY_ENGINE = env.choice("FLEET_POLICY_ENGINE", "embedded", ("embedded", "opa"))
FLEET_OPA_URL = env.str("FLEET_OPA_URL", "http://127.0.0.1:8181")
FLEET_OPA_TIMEOUT = env.int("FLEET_OPA_TIMEOUT", 10, minimum=1)
FLEET_OPA_TOKEN = env.str("FLEET_OPA_TOKEN")
# Concurrent requests per large decision: OPA evaluates one request on one core.
FLEET_OPA_PARALLELISM = env.int("FLEET_OPA_PARALLELISM", 2, minimum=1)
# Per-object findings remembered across decisions (0: evaluate every object every time).
FLEET_POLICY_MEMO_OBJECTS = env.int("FLEET_POLICY_MEMO_OBJECTS", 100_000)
# The same findings shared by every worker through the database (0: each process keeps its own).
FLEET_POLICY_MEMO_SHARED_OBJECTS = env.int("FLEET_POLICY_MEMO_SHARED_OBJECTS", 500_000)

LOG_LEVEL = env.choice("FLEET_LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
# The dev tooling (fleet.dev: local fleet, test repos, demo) and its commands; never in production.
FLEET_DEV_TOOLS = env.bool("FLEET_DEV_TOOLS", False)

env.check()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "fleet.core",
    "fleet.accounts",
    "fleet.audit",
    "fleet.inventory",
    "fleet.kube",
    "fleet.rollouts",
    "fleet.gitops",
    "fleet.render",
    "fleet.api",
    "fleet.policy",
    "fleet.drift",
    "fleet.clusteraudit",
    *(["fleet.dev"] if FLEET_DEV_TOOLS else []),
    "fleet.reports",
    "fleet.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "fleet.core.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "fleet.urls"
WSGI_APPLICATION = "fleet.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "fleet.console.context.console",
            ]
        },
    }
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
DATA_UPLOAD_MAX_MEMORY_SIZE = FLEET_MAX_REQUEST_BYTES
# The console's sign-in page; the admin keeps its own at /admin/login/.
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:overview"
LOGOUT_REDIRECT_URL = "console:login"

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a missing credential a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "fleet.accounts.authentication.BearerTokenAuthentication",
        "fleet.accounts.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["fleet.accounts.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "fleet.api.pagination.FleetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "fleet.api.openapi.FleetAutoSchema",
    "EXCEPTION_HANDLER": "fleet.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": ["fleet.api.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # ?format= belongs to the audit export, not to renderer selection.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Fleet API",
    "DESCRIPTION": "GitOps control plane for fleets of Kubernetes clusters.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["fleet.accounts.permissions.RolePermission"],
    "ENUM_NAME_OVERRIDES": {
        "RolloutStateEnum": "fleet.rollouts.states.RolloutState",
        "WaveStateEnum": "fleet.rollouts.states.WaveState",
        "DeploymentStateEnum": "fleet.rollouts.states.DeploymentState",
        "ClusterStatusEnum": "fleet.inventory.choices.ClusterStatus",
        "RepositoryCredentialKindEnum": "fleet.gitops.models.CredentialKind",
        "RolloutKindEnum": "fleet.rollouts.models.Rollout.Kind",
        "DriftModeEnum": "fleet.drift.choices.Mode",
        "DriftStateEnum": "fleet.drift.choices.DriftState",
    },
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: a control plane is often air-gapped.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL.upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"},
                # The file-system broker has no host, and kombu warns about it on every connection.
                **({"kombu.connection": {"level": "ERROR"}} if CELERY_EMBEDDED_BROKER else {})},
}
