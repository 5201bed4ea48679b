"""`marketpipe dbt build | test | docs`: dbt with the right profile for the current mode.

Embedded (`dbt.target = duckdb`, the default): snapshots the data dir's warm store, builds the
marts into `{data_dir}/analytics.duckdb`. Cluster (`dbt.target = postgres`): runs against the
PostgreSQL warm store at `dbt.postgres_url`.
"""

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from marketpipe.cli.common import ConfigOpt, DataDirOpt, console
from marketpipe.model.errors import MarketpipeError

app = typer.Typer(
    help="Run the dbt project (dbt/) against this mode's warm store: build, test, docs.",
    no_args_is_help=True,
)


class Target(StrEnum):
    duckdb = "duckdb"
    postgres = "postgres"


TargetOpt = Annotated[
    Target | None,
    typer.Option("--target", help="duckdb (embedded) or postgres (cluster); default: dbt.target."),
]
SelectOpt = Annotated[
    str | None, typer.Option("--select", "-s", help="dbt node selection, e.g. marts.")
]


def _invoke(
    command: str,
    args: list[str],
    data_dir: Path | None,
    target: Target | None,
    config: Path | None,
) -> None:
    from marketpipe.analytics.build import run_for_mode
    from marketpipe.cli.common import settings_from
    from marketpipe.embedded.stores import open_reader
    from marketpipe.storage.embedded import DataDir

    settings = settings_from(config, data_dir=data_dir)
    dbt = settings.dbt.model_copy(
        update={
            "target": target or settings.dbt.target,
            # One warm store, one setting: the cluster's unless dbt names another.
            "postgres_url": settings.dbt.postgres_url or settings.cluster.postgres_dsn,
        }
    )
    store = None
    try:
        if dbt.target == "duckdb":
            if not DataDir(settings.data_dir).warm.is_file():
                raise MarketpipeError(
                    f"no warm store in {settings.data_dir}: run `marketpipe replay` or "
                    "`marketpipe demo` first"
                )
            try:
                store = open_reader(settings.data_dir)
            except MarketpipeError:
                raise MarketpipeError(
                    f"{settings.data_dir} is held by a running pipeline, which rebuilds the "
                    "marts itself on its schedule (see /api/v1/system/health, component "
                    "scheduler)"
                ) from None
        result = asyncio.run(
            run_for_mode(dbt, command, args, data_dir=settings.data_dir, store=store)
        )
    except MarketpipeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        if store is not None:
            store.close()
    print(result.output, end="")
    raise typer.Exit(result.returncode)


def _selection(select: str | None) -> list[str]:
    return ["--select", select] if select else []


@app.command()
def build(
    data_dir: DataDirOpt = None,
    target: TargetOpt = None,
    select: SelectOpt = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild incremental models from scratch.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Build every model and run every test; embedded, publish the marts only if all pass."""
    args = _selection(select) + (["--full-refresh"] if full_refresh else [])
    _invoke("build", args, data_dir, target, config)


@app.command()
def test(
    data_dir: DataDirOpt = None,
    target: TargetOpt = None,
    select: SelectOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the data and unit tests (embedded: on a copy of the last marts)."""
    _invoke("test", _selection(select), data_dir, target, config)


@app.command()
def docs(
    data_dir: DataDirOpt = None,
    target: TargetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Generate the documentation site (models, columns, lineage) into {data_dir}/dbt/target."""
    _invoke("docs generate", [], data_dir, target, config)


@app.command("source-freshness")
def source_freshness(
    data_dir: DataDirOpt = None,
    target: TargetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check the warm store's freshness against the sources' warn/error thresholds."""
    _invoke("source freshness", [], data_dir, target, config)
