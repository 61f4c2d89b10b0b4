"""docker-compose.yml shows the scale-out it describes: two app replicas behind a proxy that upgrades
websockets, PostgreSQL and Redis. `docker compose config` validates it where Compose is installed; the
structure is checked everywhere."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml
from django.conf import settings

COMPOSE = settings.BASE_DIR / "docker-compose.yml"
NGINX = settings.BASE_DIR / "deploy" / "nginx.conf"


def _compose_available() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0


def test_the_compose_file_runs_two_replicas_behind_a_websocket_proxy_with_postgres_and_redis():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    app1, app2 = services["app1"], services["app2"]
    assert app1 == app2, "the replicas differ"
    assert app1["command"] == ["python", "manage.py", "run"]
    env = app1["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert int(env["NUM_PROXIES"]) == 1
    # Migrations run once, before either replica starts.
    assert services["migrate"]["command"] == ["python", "manage.py", "init"]
    assert app1["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["depends_on"]["db"] == {"condition": "service_healthy"}
    assert services["db"]["image"].startswith("postgres:") and services["redis"]["image"].startswith("redis:")

    proxy = services["proxy"]
    assert set(proxy["depends_on"]) == {"app1", "app2"} and proxy["ports"] == ["8000:80"]
    assert proxy["volumes"] == ["./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro"]

    nginx = NGINX.read_text()
    assert re.findall(r"^\s*server (app\d):8000\b", nginx, re.M) == ["app1", "app2"]
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "proxy_set_header Connection $connection_upgrade;" in nginx
    assert "proxy_buffering off;" in nginx  # streamed answers are relayed as they come
    assert "proxy_set_header Host $http_host;" in nginx  # the websocket origin check compares Origin and Host


def test_docker_compose_accepts_the_file_where_it_is_installed():
    if not _compose_available():
        # Without Compose the YAML must still load with its anchors resolved (checked above) and be
        # self-consistent: every depends_on names a service.
        services = yaml.safe_load(COMPOSE.read_text())["services"]
        for name, service in services.items():
            assert set(service.get("depends_on", {})) <= set(services), name
        return
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "compose-config-check"},
    )
    assert result.returncode == 0, result.stderr


def test_the_replicas_share_one_workspaces_volume():
    document = yaml.safe_load(COMPOSE.read_text())
    services = document["services"]
    workspaces = services["app1"]["environment"]["WORKSPACES_DIR"]
    for name in ("migrate", "app1", "app2"):
        assert f"workspaces:{workspaces}" in services[name]["volumes"], name
    assert "workspaces" in document["volumes"]
    # The image makes the mount point, owned by the user the server runs as (a new volume takes its owner).
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    assert f"mkdir -p {workspaces}" in dockerfile and "chown -R conduit /app" in dockerfile


def test_the_demo_profile_runs_the_demo_model_that_the_apps_can_be_pointed_at():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    demo = services["demo-model"]
    assert demo["profiles"] == ["demo"]  # not started by a plain `docker compose up`
    assert demo["image"] == services["app1"]["image"]
    assert demo["command"] == ["python", "-m", "config.testing.demo_model", "--host", "0.0.0.0", "--port", "8765"]
    assert all(demo.get("profiles") or name != "demo-model" for name in services)
    env = services["app1"]["environment"]
    assert env["ANTHROPIC_BASE_URL"] == "${ANTHROPIC_BASE_URL:-}"
    assert env["CONDUIT_DEMO_MODEL"] == "${CONDUIT_DEMO_MODEL:-}"
    header = COMPOSE.read_text().split("services:")[0]
    assert "ANTHROPIC_BASE_URL=http://demo-model:8765 ANTHROPIC_API_KEY=demo" in header
    assert "--profile demo up" in header


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_the_image_installs_every_package_from_a_lock_with_hashes_that_matches_the_requirements():
    lock = (settings.BASE_DIR / "requirements.lock").read_text()
    locked, wanted = _pins(lock), _pins((settings.BASE_DIR / "requirements.txt").read_text())
    assert wanted and all(locked.get(name) == version for name, version in wanted.items()), {
        name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version
    }
    assert len(locked) > len(wanted)  # the dependencies' dependencies too
    # Every locked package carries at least one sha256 hash.
    body = "\n".join(line for line in lock.splitlines() if not line.startswith("#"))  # pip-compile's header
    entries = re.split(r"\n(?=[A-Za-z0-9])", body)
    for entry in entries:
        if entry.strip() and not entry.startswith("#"):
            assert "--hash=sha256:" in entry, entry.splitlines()[0]
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    assert "COPY requirements.lock ." in dockerfile
    assert "pip install --no-deps --require-hashes -r requirements.lock" in dockerfile
    assert "-r requirements.txt" not in dockerfile
