"""Run the repo's server scripts (scripts/servers/*.sh): one implementation of start/stop for
developers, test fixtures and the bench alike."""

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "servers"
STARTUPS: list[tuple[str, float]] = []  # (server, seconds): pytest's summary shows them


class ServerScriptError(RuntimeError):
    """A server script exited non-zero; the message carries its stderr (what to install)."""


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `scripts/servers/<name>.sh ARGS`; returns its stdout, raises ServerScriptError
    with its stderr if it fails."""
    result = subprocess.run(
        ["bash", str(SCRIPTS / f"{name}.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
    )
    if result.returncode != 0:
        raise ServerScriptError(
            f"{name}.sh {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            f"\n(`make test` installs the servers: scripts/setup.d/)"
        )
    return result.stdout.strip()


def server_dir(prefix: str) -> Path:
    """A data dir under /tmp: PostgreSQL runs as the `postgres` user when we are root and must
    be able to reach it (pytest's tmp dirs are private to the current user)."""
    return Path(tempfile.mkdtemp(prefix=f"marketpipe-{prefix}-", dir="/tmp"))


@dataclass
class ScriptServer:
    """A server started by `scripts/servers/<script>.sh start DIR [PORT]`; `url` is what the
    start command printed. stop()/start() keep the data dir and port (restart scenarios)."""

    script: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    port: int = 0
    startup_s: float = 0.0

    def start(self) -> str:
        began = time.perf_counter()
        args = [str(self.port)] if self.port else []
        self.url = run_script(self.script, "start", str(self.data_dir), *args, env=self.env)
        self.startup_s = time.perf_counter() - began
        STARTUPS.append((self.script, self.startup_s))
        self.port = int((self.data_dir / "port").read_text())
        return self.url

    def stop(self) -> None:
        run_script(self.script, "stop", str(self.data_dir), env=self.env)

    def running(self) -> bool:
        status = subprocess.run(
            ["bash", str(SCRIPTS / f"{self.script}.sh"), "status", str(self.data_dir)],
            capture_output=True,
        )
        return status.returncode == 0

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
