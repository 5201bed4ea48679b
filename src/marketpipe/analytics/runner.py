"""Run dbt (`dbt/` at the repo root) as a subprocess with the right profile for the mode.

dbt runs in its own process (and its own venv, scripts/setup.d/40-dbt-venv.sh): it never
shares the pipeline's interpreter, locks or DuckDB connection, and it runs at a lower CPU
priority. Embedded mode builds the marts into a copy of the last marts file and renames it
into place only when the whole build (models and tests) passed, so the API always reads a
complete, tested marts database while the next one is built.
"""

import asyncio
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from marketpipe.analytics.settings import DbtSettings
from marketpipe.model.errors import ConfigError, MarketpipeError

log = logging.getLogger(__name__)

_CHECKOUT = Path(__file__).resolve().parents[3]
# Built as `{data_dir}/dbt/build/analytics.duckdb` and renamed to `{data_dir}/analytics.duckdb`:
# the same file name, so the database (catalog) name the views were created under stays valid.


class DbtError(MarketpipeError):
    """dbt failed (models or tests) or could not start."""


@dataclass(frozen=True, slots=True)
class DbtResult:
    command: list[str]
    returncode: int
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def project_dir(settings: DbtSettings) -> Path:
    path = (settings.project_dir or _CHECKOUT / "dbt").absolute()
    if not (path / "dbt_project.yml").is_file():
        raise ConfigError(
            f"no dbt project at {path}; set dbt.project_dir (MARKETPIPE_DBT__PROJECT_DIR)"
        )
    return path


def dbt_executable(settings: DbtSettings) -> Path:
    if settings.executable is not None:
        candidates = [settings.executable]
    else:
        candidates = [
            Path(sys.executable).parent / "dbt",
            _CHECKOUT / ".cache" / "dbt-venv" / "bin" / "dbt",
        ]
        found = shutil.which("dbt")
        if found:
            candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    raise ConfigError(
        "dbt is not installed: run `bash scripts/setup.d/40-dbt-venv.sh` (or `make test`), "
        "or point dbt.executable (MARKETPIPE_DBT__EXECUTABLE) at a dbt with the duckdb and "
        "postgres adapters"
    )


def work_dir(data_dir: Path) -> Path:
    """dbt's inputs, target and logs for embedded mode; never the source checkout. Absolute:
    dbt runs with this as its working directory, where a relative path would apply twice."""
    return data_dir.absolute() / "dbt"


def dbt_environment(
    settings: DbtSettings, *, duckdb_path: Path | None, work: Path
) -> dict[str, str]:
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "true" if sys.stdout.isatty() else "false",
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
        "DBT_PROFILES_DIR": str(project_dir(settings)),
        "MARKETPIPE_DBT_TARGET": settings.target,
        "MARKETPIPE_DBT_DUCKDB_MEMORY": settings.duckdb_memory_limit,
    }
    if duckdb_path is not None:
        env["MARKETPIPE_DBT_DUCKDB_PATH"] = str(duckdb_path)
    if settings.target == "postgres":
        if not settings.postgres_url:
            raise ConfigError(
                "the postgres dbt target needs dbt.postgres_url (MARKETPIPE_DBT__POSTGRES_URL)"
            )
        url = urlsplit(settings.postgres_url)
        env.update(
            MARKETPIPE_DBT_PG_HOST=url.hostname or "127.0.0.1",
            MARKETPIPE_DBT_PG_PORT=str(url.port or 5432),
            MARKETPIPE_DBT_PG_USER=unquote(url.username or "marketpipe"),
            MARKETPIPE_DBT_PG_PASSWORD=unquote(url.password or ""),
            MARKETPIPE_DBT_PG_DBNAME=url.path.lstrip("/") or "marketpipe",
            MARKETPIPE_DBT_PG_SCHEMA=settings.postgres_schema,
            MARKETPIPE_DBT_WARM_SCHEMA=settings.postgres_warm_schema,
        )
    return env


def dbt_command(
    settings: DbtSettings, command: str, args: list[str], variables: dict[str, Any]
) -> list[str]:
    project = str(project_dir(settings))
    line = [str(dbt_executable(settings)), *command.split(), "--project-dir", project]
    line += ["--profiles-dir", project, "--target", settings.target]
    if variables:
        line += ["--vars", json.dumps(variables)]
    return line + args


async def run_dbt(
    settings: DbtSettings, command: list[str], env: dict[str, str], cwd: Path
) -> DbtResult:
    """Run one dbt command to completion; cancelling the caller terminates dbt."""
    started = time.perf_counter()
    await asyncio.to_thread(cwd.mkdir, parents=True, exist_ok=True)
    # `nice` the program rather than os.nice in a preexec_fn, which is unsafe in a threaded
    # process like the pipeline.
    nice = shutil.which("nice") if settings.nice else None
    argv = [nice, "-n", str(settings.nice), *command] if nice else command
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), settings.timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
        raise
    return DbtResult(command, process.returncode or 0, time.perf_counter() - started,
                     out.decode(errors="replace"))  # fmt: skip
