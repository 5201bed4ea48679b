"""Helpers for stop-signal tests: a `marketpipe` command as a child process, waited on until
it is working, then sent SIGTERM (what `docker stop` and systemd send) or SIGINT (Ctrl-C)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Command:
    proc: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"exited early ({self.proc.returncode}):\n{self.stderr[-3000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{self.stderr[-3000:]}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Send `sig` (to this process only, as `docker stop` does) and return the exit code."""
        assert self.proc.poll() is None, "already exited"
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"still running {timeout_s} s after {sig.name}:\n{self.stderr}"
            ) from None


def start(
    *args: str, cwd: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> Command:
    """`python -m marketpipe.cli <args>`; stderr goes to a file (a pipe could fill up)."""
    stderr_path = log or cwd / f"stderr-{args[0]}-{time.monotonic_ns()}.txt"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "marketpipe.cli", *args],
            cwd=cwd,
            env=os.environ | {"MARKETPIPE_LOG_FORMAT": "json"} | (env or {}),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Command(proc, stderr_path)


def health(port: int) -> dict[str, object] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/v1/system/health", timeout=5)
    except httpx.HTTPError:
        return None
    return response.json()  # type: ignore[no-any-return]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
