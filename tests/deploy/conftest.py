"""Session fixtures: the images (built once, cached in .cache/containers) and the running
embedded demo stack, shared by the stack, Prometheus and Grafana tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.deploy.podman import COMPOSE_DIR, ComposeStack, build_images, compose_stack, free_port

# Every secret the compose files require, so that `config` and `up` can run.
TEST_SECRETS = {
    "GRAFANA_ADMIN_PASSWORD": "ci-grafana-" + uuid.uuid4().hex[:8],
    "POSTGRES_PASSWORD": "ci-pg-" + uuid.uuid4().hex[:8],
    "REDIS_PASSWORD": "ci-redis-" + uuid.uuid4().hex[:8],
    "S3_ACCESS_KEY": "ci-access",
    "S3_SECRET_KEY": "ci-secret-" + uuid.uuid4().hex[:8],
}


@pytest.fixture(scope="session")
def embedded_images() -> None:
    build_images("marketpipe", "prometheus")


@pytest.fixture(scope="session")
def demo_stack(embedded_images: None) -> Iterator[ComposeStack]:
    """`marketpipe demo` and Prometheus from deploy/compose/embedded.yaml (Grafana cannot run
    here: see docs/operations.md), ports published on 127.0.0.1."""
    env = {
        **TEST_SECRETS,
        "MARKETPIPE_MODE": "demo",
        "MARKETPIPE_API_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
    }
    project = f"mpdemo{os.getpid()}"
    with compose_stack(
        project, [COMPOSE_DIR / "embedded.yaml"], env, ["marketpipe", "prometheus"]
    ) as stack:
        stack.wait_healthy("marketpipe")
        stack.wait_healthy("prometheus")
        yield stack
