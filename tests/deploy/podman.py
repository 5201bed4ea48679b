"""Podman and podman-compose for the stack tests: this checkout's own storage and config
(scripts/containers/env.sh), stand-in images, and stacks that are always torn down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "containers"
COMPOSE_DIR = REPO / "deploy" / "compose"
PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"

# The locally built images that replace the official ones (docs/operations.md).
STANDIN_IMAGES = {
    "MARKETPIPE_IMAGE": "localhost/marketpipe:ci",
    "MARKETPIPE_IMAGE_PROMETHEUS": "localhost/standin/prometheus:bookworm",
    "MARKETPIPE_IMAGE_POSTGRES": "localhost/standin/postgres:15",
    "MARKETPIPE_IMAGE_REDIS": "localhost/standin/redis:7",
    "MARKETPIPE_IMAGE_KAFKA": "localhost/standin/kafka:3.9.1",
    "MARKETPIPE_IMAGE_S3": "localhost/standin/s3proxy:ci",
}


def podman_env() -> dict[str, str]:
    subprocess.run([str(REPO / "scripts/containers/write-conf.sh"), str(CACHE)], check=True)
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CACHE / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(CACHE / "storage.conf")
    return env


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def build_images(*names: str) -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/containers/build-images.sh"), *names],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"building {names} failed:\n{proc.stderr[-4000:]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""  # not listening (yet)


def http_json(url: str, timeout: float = 10) -> Any:
    status, body = http_get(url, timeout)
    assert status == 200, f"GET {url}: HTTP {status} {body[:300]!r}"
    return json.loads(body)


class ComposeStack:
    """One compose project: `up` some of its services, ask about them, always `down -v`."""

    def __init__(self, project: str, files: Sequence[Path], env: Mapping[str, str]) -> None:
        self.project = project
        self.files = list(files)
        self.env = {**podman_env(), **STANDIN_IMAGES, **env}

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        cmd = [str(PODMAN_COMPOSE), "-p", self.project]
        for f in self.files:
            cmd += ["-f", str(f)]
        proc = subprocess.run(
            [*cmd, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=COMPOSE_DIR,
        )
        if check:
            assert proc.returncode == 0, (
                f"podman-compose {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def running(self) -> list[str]:
        out = podman(
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--format",
            "{{.Names}}",
        ).stdout
        return out.split()

    def logs(self, service: str, tail: int = 60) -> str:
        proc = podman("logs", "--tail", str(tail), self.container(service), check=False)
        return proc.stdout + proc.stderr

    def wait_healthy(self, service: str, timeout: float = 240) -> None:
        """Run the service's compose healthcheck until it passes. Podman 4.3 runs healthchecks
        from systemd timers, which this host has not, so the test is the timer."""
        deadline = time.monotonic() + timeout
        while True:
            proc = podman("healthcheck", "run", self.container(service), check=False, timeout=60)
            if proc.returncode == 0:
                return
            state = podman(
                "inspect", "--format", "{{.State.Status}}", self.container(service), check=False
            ).stdout.strip()
            if state not in ("running", "created") or time.monotonic() > deadline:
                raise AssertionError(
                    f"{service} not healthy ({state}): {proc.stdout}{proc.stderr}\n"
                    f"{self.logs(service)}"
                )
            time.sleep(2)

    def exec(self, service: str, *cmd: str, timeout: float = 60) -> str:
        proc = podman("exec", self.container(service), *cmd, check=False, timeout=timeout)
        assert proc.returncode == 0, f"exec {cmd} in {service}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def down(self) -> None:
        self.compose("down", "-v", "-t", "10", check=False)


@contextmanager
def compose_stack(
    project: str, files: Sequence[Path], env: Mapping[str, str], services: Sequence[str]
) -> Iterator[ComposeStack]:
    stack = ComposeStack(project, files, env)
    stack.down()  # a crashed earlier session's leftovers
    volumes_before = set(podman("volume", "ls", "--format", "{{.Name}}").stdout.split())
    try:
        stack.compose("up", "-d", "--no-build", *services)
        yield stack
    finally:
        stack.down()
        left = stack.running()
        assert not left, f"containers left after down: {left}"
        volumes = set(podman("volume", "ls", "--format", "{{.Name}}").stdout.split())
        assert volumes <= volumes_before, f"volumes left after down: {volumes - volumes_before}"


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
