"""Settings of the dbt runner (`[dbt]`) and the in-process scheduler (`[scheduler]`)."""

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DbtSettings(BaseModel):
    """How `marketpipe dbt ...` and the scheduled build run dbt."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key fails at start

    # The dbt project; default: `dbt/` of the source checkout.
    project_dir: Path | None = None
    # The dbt executable; default: `dbt` next to the Python running marketpipe, then
    # `.cache/dbt-venv/bin/dbt` of the checkout (scripts/setup.d/40-dbt-venv.sh), then PATH.
    executable: Path | None = None
    # duckdb: embedded mode (marts in `{data_dir}/analytics.duckdb`); postgres: the cluster store.
    target: Literal["duckdb", "postgres"] = "duckdb"
    # PostgreSQL target: a libpq URL, postgresql://user:password@host:port/dbname;
    # `marketpipe dbt` defaults it to cluster.postgres_dsn.
    postgres_url: str | None = None
    postgres_schema: str = "analytics"
    # The warm tables' schema in PostgreSQL (the sources).
    postgres_warm_schema: str = "public"
    timeout_s: float = Field(1800.0, gt=0)
    # Lower priority for the dbt process, so the pipeline keeps the CPU while dbt runs.
    nice: int = Field(10, ge=0, le=19)
    duckdb_memory_limit: str = "1GB"

    @field_validator("postgres_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^postgres(ql)?://", value):
            raise ValueError("must look like postgresql://user:password@host:port/dbname")
        return value


_DAILY_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class SchedulerSettings(BaseModel):
    """Periodic jobs of `marketpipe run` and `demo`."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key fails at start

    enabled: bool = True
    dbt_build_every_s: float = Field(600.0, gt=0)
    # The first build comes this soon after start, then every dbt_build_every_s.
    dbt_first_build_after_s: float = Field(60.0, ge=0)
    lifecycle_daily_at: str = "03:00"  # HH:MM, UTC
    # A failed lifecycle run is retried this much later (dbt retries at its next interval).
    retry_after_s: float = Field(600.0, gt=0)

    @field_validator("lifecycle_daily_at")
    @classmethod
    def _daily_at(cls, value: str) -> str:
        if not _DAILY_AT.match(value):
            raise ValueError("must be HH:MM in UTC, e.g. 03:00")
        return value

    @property
    def lifecycle_time(self) -> tuple[int, int]:
        hours, minutes = self.lifecycle_daily_at.split(":")
        return int(hours), int(minutes)
