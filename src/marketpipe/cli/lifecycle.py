"""`marketpipe lifecycle run`: retention, warm → lake archival of candles and lake compaction,
once, for embedded mode (a data dir) or cluster mode (`[cluster]`: PostgreSQL, S3, Redis)."""

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from marketpipe.cli.common import ConfigOpt, DataDirOpt, console, settings_from
from marketpipe.config import Settings
from marketpipe.model import times
from marketpipe.model.errors import MarketpipeError

if TYPE_CHECKING:
    from marketpipe.storage.embedded import EmbeddedStore
    from marketpipe.storage.lifecycle import LifecycleReport

app = typer.Typer(
    help="Storage lifecycle: retention (warm 90 days, hot 1 hour), candle archival to the "
    "lake, daily compaction of small Parquet files. Normally run daily by the scheduler.",
    no_args_is_help=True,
)


class Backend(StrEnum):
    embedded = "embedded"
    cluster = "cluster"


@app.command()
def run(
    backend: Annotated[
        Backend,
        typer.Option("--backend", help="embedded (a data dir) or cluster (cluster settings)."),
    ] = Backend.embedded,
    data_dir: DataDirOpt = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Act as if it were this ISO-8601 UTC time (default: now)."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the lifecycle once and print what it did."""
    settings = settings_from(config, data_dir=data_dir)
    now_us = None
    if now is not None:
        try:
            now_us = times.parse_time(now, epoch_ms=False)
        except ValueError as exc:
            raise typer.BadParameter(f"--now: {exc}") from None
    from marketpipe.storage.embedded import DataDir

    if backend is Backend.embedded and not DataDir(settings.data_dir).warm.is_file():
        console.print(f"[red]error:[/red] no data in {settings.data_dir} (see --data-dir)")
        raise typer.Exit(1)
    try:
        report = run_lifecycle(settings, now_us, backend=backend.value)
    except MarketpipeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"lifecycle ({backend.value})", show_header=False)
    table.add_row("archived days", ", ".join(report.archived_days) or "-")
    table.add_row("archived candles", str(report.archived_candles))
    removed = {
        **{f"warm {k}": v for k, v in report.warm_removed.items()},
        **{f"hot {k}": v for k, v in report.hot_removed.items()},
    }
    for name, count in removed.items():
        table.add_row(f"removed {name}", str(count))
    for name, result in report.compaction.items():
        table.add_row(
            f"compacted {name}",
            f"{result.partitions} partitions: {result.files_in} -> {result.files_out} files, "
            f"{result.rows_in - result.rows_out} duplicates dropped",
        )
    Console().print(table)


def run_lifecycle(
    settings: Settings,
    now: int | None = None,
    *,
    backend: Literal["embedded", "cluster"] = "embedded",
    store: "EmbeddedStore | None" = None,
) -> "LifecycleReport":
    """One lifecycle run at `now` (µs since the epoch; default: the wall clock) over this
    mode's stores: the data dir (or a running pipeline's `store`), or `[cluster]`'s servers."""
    if now is not None and now < 10**14:  # before 1973 in µs: surely seconds or millis
        raise ValueError(f"now={now} must be microseconds since the epoch")
    now_us = int(time.time() * 1e6) if now is None else now
    if backend == "cluster":
        from marketpipe.cluster.lifecycle import run_cluster_lifecycle

        return run_cluster_lifecycle(settings, now_us)
    from marketpipe.embedded.lifecycle import run_embedded_lifecycle

    return run_embedded_lifecycle(settings, now_us, store=store)
