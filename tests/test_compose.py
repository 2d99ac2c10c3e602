"""docker-compose.yml stays valid: structurally always, and with `docker compose config` when it exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_has_the_whole_stack():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "minio", "minio-init"} <= set(services)
    assert "--no-control-socket" in services["web"]["command"]
    assert "celery -A config worker" in services["worker"]["command"]
    assert "celery -A config beat" in services["beat"]["command"]
    assert "mc mb" in services["minio-init"]["entrypoint"]
    assert "migrate" in services["migrate"]["command"]
    for name in ("web", "worker", "beat"):  # nobody starts before the migrations ran
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--preload" in services["web"]["command"]  # a bad config stops gunicorn instead of a restart loop
    assert "9000:9000" in services["minio"]["ports"]  # browsers load media through presigned URLs
    env_keys = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    assert {"DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME", "SECRET_KEY", "ALLOWED_HOSTS"} <= env_keys
    assert {"AWS_S3_PUBLIC_ENDPOINT_URL", "STRIPE_SECRET_KEY", "REPLICATE_API_TOKEN"} <= env_keys


def test_beat_is_part_of_the_stack():
    """Beat finishes or refunds the jobs of a worker that died hard; without it credits stay held."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    beat = services["beat"]
    assert beat["command"].startswith("celery -A config beat")
    assert "--schedule=/app/var/" in beat["command"]  # the image's writable directory
    assert "deploy" not in beat and "scale" not in beat  # one clock, never replicated
    for key in ("image", "env_file", "restart"):  # same image and settings as web and worker
        assert beat[key] == services["web"][key] == services["worker"][key]
    assert services["worker"]["stop_grace_period"]  # warm shutdown before the kill

    from django.conf import settings

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"generation.tasks.poll_running_generations", "generation.tasks.fail_stuck_generations"} <= scheduled

    makefile = (ROOT / "Makefile").read_text()
    assert "celery -A config worker" in makefile and "celery -A config beat" in makefile


def test_compose_sets_the_trusted_proxy_count():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    # No proxy in this stack: gunicorn is published directly, so X-Forwarded-For is not trusted.
    assert services["web"]["environment"]["TRUSTED_PROXY_COUNT"] == "${TRUSTED_PROXY_COUNT:-0}"
    assert "127.0.0.1:8000:8000" in services["web"]["ports"]  # never reachable around a proxy


def test_readme_says_what_runs_where_and_names_the_proxy_setting():
    readme = (ROOT / "README.md").read_text()
    deployment = readme.split("## Running the full stack", 1)[1].split("## Architecture", 1)[0]
    assert "### What runs where" in deployment and "Without beat" in deployment
    assert "make worker" in deployment and "make beat" in deployment
    assert "TRUSTED_PROXY_COUNT" in deployment


def test_docker_compose_config_accepts_the_file(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker client has no compose plugin here")
    env_file = ROOT / ".env"
    created = not env_file.exists()
    if created:
        shutil.copy(ROOT / ".env.example", env_file)
    try:
        result = subprocess.run(
            [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    finally:
        if created:
            env_file.unlink()
    assert result.returncode == 0, result.stderr
