"""Every compose file validates (docker-compose v1 and podman-compose), and an unset secret
stops `config` with a message that names it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import TEST_SECRETS
from tests.deploy.podman import COMPOSE_DIR, PODMAN_COMPOSE, REPO

COMPOSE_FILES = sorted(COMPOSE_DIR.glob("*.yaml"))


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETPIPE_", "GRAFANA_"))}
    env.update(TEST_SECRETS)
    env.update(overrides)
    return env


def test_the_two_stacks_exist() -> None:
    assert [p.name for p in COMPOSE_FILES] == ["cluster.yaml", "embedded.yaml"]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_docker_compose_config_validates(path: Path) -> None:
    proc = subprocess.run(
        ["docker-compose", "-f", str(path), "config", "-q"],
        env=_env(),
        capture_output=True,
        text=True,
        cwd=COMPOSE_DIR,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_podman_compose_config_resolves_official_images_by_default(path: Path) -> None:
    proc = subprocess.run(
        [str(PODMAN_COMPOSE), "-f", str(path), "config"],
        env=_env(),
        capture_output=True,
        text=True,
        cwd=COMPOSE_DIR,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    images = {svc["image"] for svc in services.values()}
    assert not [i for i in images if i.startswith("localhost/")], images
    for name, svc in services.items():
        assert "healthcheck" in svc or name in {"exchange"}, f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (
                name,
                dep,
                cond,
            )
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


@pytest.mark.parametrize(
    ("path", "secret"),
    [(COMPOSE_DIR / "embedded.yaml", "GRAFANA_ADMIN_PASSWORD")]
    + [(COMPOSE_DIR / "cluster.yaml", s) for s in sorted(TEST_SECRETS)],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_an_unset_secret_fails_config_and_names_the_variable(path: Path, secret: str) -> None:
    env = _env()
    env.pop(secret)
    proc = subprocess.run(
        ["docker-compose", "-f", str(path), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        cwd=COMPOSE_DIR,
        timeout=60,
    )
    assert proc.returncode != 0
    assert f"set {secret} in deploy/compose/.env" in proc.stderr


def test_env_example_lists_every_variable_the_compose_files_read() -> None:
    example = (COMPOSE_DIR / ".env.example").read_text()
    declared = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    used: set[str] = set()
    for path in COMPOSE_FILES:
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", path.read_text()))
    assert used - declared == set(), "missing from .env.example"
    assert declared - used == set(), "in .env.example but read by no compose file"


def test_image_dbt_requirements_match_the_host_dbt_venv() -> None:
    script = (REPO / "scripts/setup.d/40-dbt-venv.sh").read_text()
    host = re.findall(r'^\s+"(dbt-[a-z]+[^"]+)"$', script, re.M)
    image = [
        line
        for line in (REPO / "deploy/docker/dbt-requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    # The image builds the stacks' marts (DuckDB, PostgreSQL); the BigQuery adapter (about
    # 600 MB of Google client wheels) is for Google Cloud deployments and stays out of it.
    shipped = [r for r in host if not r.startswith("dbt-bigquery")]
    assert len(shipped) == len(host) - 1  # the venv does have it
    assert shipped and image == shipped
