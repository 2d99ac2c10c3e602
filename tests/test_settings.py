"""Settings read from the environment: embedded default, production, strictness."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRINT = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE'], s.STORAGES['default']['BACKEND'], "
    "s.CELERY_TASK_ALWAYS_EAGER, s.EMAIL_BACKEND, s.DEBUG)"
)


def run(code: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "SYSTEMROOT"}}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", "ATELIER_VAR_DIR": "/tmp/atelier-settings-test"})
    clean.update(env)
    argv = [sys.executable, "-c", code] if code else [sys.executable, "manage.py", *args]
    return subprocess.run(argv, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)


def production_env(**overrides) -> dict:
    env = {
        "DJANGO_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "atelier.example",
        "DATABASE_URL": "sqlite:////tmp/atelier-settings-test.db",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def test_no_environment_gives_the_embedded_default():
    result = run(PRINT, {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "django.core.files.storage.FileSystemStorage",
        "False",  # a real worker on the filesystem broker (tests/test_embedded_worker.py)
        "django.core.mail.backends.console.EmailBackend",
        "True",
    ]


def test_production_values_come_from_the_environment():
    env = production_env(
        DATABASE_URL="postgres://u:p@db:5432/atelier",
        REDIS_URL="redis://redis:6379/0",
        AWS_STORAGE_BUCKET_NAME="atelier-media",
        EMAIL_URL="smtp+tls://user:pass@smtp.example:587",
    )
    result = run(PRINT, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "storages.backends.s3.S3Storage",
        "False",
        "django.core.mail.backends.smtp.EmailBackend",
        "False",
    ]


def test_production_refuses_to_start_without_each_required_value():
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"):
        result = run(PRINT, production_env(**{name: None}))
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert lines == [f"atelier: {name} must be set when DJANGO_ENV=production"]


def test_booleans_are_parsed_strictly():
    result = run(PRINT, {"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_check_deploy_is_clean_in_production():
    result = run("", production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_bucket_origin_is_allowed_by_the_content_security_policy():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "d = s.CONTENT_SECURITY_POLICY['DIRECTIVES']; print(d['img-src'][-1], d['connect-src'][-1])"
    )
    minio = run(code, {"AWS_STORAGE_BUCKET_NAME": "media", "AWS_S3_ENDPOINT_URL": "http://minio:9000/"})
    assert minio.stdout.split() == ["http://minio:9000", "http://minio:9000"], minio.stderr
    aws = run(code, {"AWS_STORAGE_BUCKET_NAME": "media", "AWS_S3_REGION_NAME": "eu-west-1"})
    assert aws.stdout.split() == ["https://media.s3.eu-west-1.amazonaws.com"] * 2, aws.stderr


def test_production_static_files_collect_with_hashed_names(tmp_path):
    """The Docker image collects static files with the manifest storage at build time."""
    result = run("", production_env(STATIC_ROOT=str(tmp_path / "static")), "collectstatic", "--noinput")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    assert "vendor/model-viewer-4.4.0.min.js" in manifest and "css/atelier.css" in manifest


def test_email_links_use_the_scheme_of_the_site_url():
    code = (
        "import django; django.setup(); from django.conf import settings as s; print(s.ACCOUNT_DEFAULT_HTTP_PROTOCOL)"
    )
    assert run(code, production_env(SITE_URL="http://localhost:8000")).stdout.strip() == "http"
    assert run(code, production_env(SITE_URL="https://atelier.example")).stdout.strip() == "https"


def test_trusted_proxy_count_sets_allauths_and_is_checked():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.TRUSTED_PROXY_COUNT, s.ALLAUTH_TRUSTED_PROXY_COUNT)"
    )
    assert run(code, {}).stdout.split() == ["0", "0"]
    assert run(code, production_env(TRUSTED_PROXY_COUNT="1")).stdout.split() == ["1", "1"]
    refused = run(code, {"TRUSTED_PROXY_COUNT": "-1"})
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == ["atelier: TRUSTED_PROXY_COUNT=-1 must be 0 or more"]


def test_the_redis_cache_fails_open_with_short_timeouts():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "c = s.CACHES['default']; print(c['BACKEND'], c['OPTIONS']['socket_connect_timeout'])"
    )
    result = run(code, production_env(REDIS_URL="redis://redis:6379/0"))
    assert result.stdout.split() == ["config.cache.FailOpenRedisCache", "1"], result.stderr
