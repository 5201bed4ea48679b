"""Operational commands the schedulers call (Airflow DAGs in cluster mode, people anytime):
`marketpipe check freshness|completeness` and `marketpipe backfill`.
Each is thin over code the pipeline already uses; exit status 1 means "act on this"."""

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from marketpipe.cli.common import ConfigOpt, DataDirOpt, console
from marketpipe.model.errors import MarketpipeError

WarmUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--warm-url",
        envvar="MARKETPIPE_WARM_URL",
        help="Cluster mode: the PostgreSQL warm store, postgresql://user@host:port/db.",
    ),
]

check_app = typer.Typer(
    help="Data checks that fail (exit 1) and say which symbol when something is wrong.",
    no_args_is_help=True,
)


def _positions(data_dir: Path | None, warm_url: str | None, config: Path | None) -> list[Any]:
    """Per-symbol positions from the cluster warm store, the data dir, or its running API."""
    from marketpipe.cli.common import read_rows, settings_from
    from marketpipe.serving.rows import position_row

    if warm_url:
        from marketpipe.cluster.stores import open_warehouse

        warm = open_warehouse(settings_from(config), dsn=warm_url)
        try:
            return [position_row(p) for p in warm.positions()]
        finally:
            warm.close()
    settings = settings_from(config, data_dir=data_dir)
    rows: list[Any] = read_rows(
        settings.data_dir,
        "/api/v1/query/positions",
        {},
        lambda store: [position_row(p) for p in store.warm.positions()],
    )
    return rows


def _report(problems: list[str], checked: int, what: str) -> None:
    if problems:
        for problem in problems:
            console.print(f"[red]ALERT[/red] {problem}")
        raise typer.Exit(1)
    if not checked:
        console.print(f"[red]ALERT[/red] no symbols to check {what} of")
        raise typer.Exit(1)
    console.print(f"{what}: {checked} symbols ok")


@check_app.command()
def freshness(
    max_staleness_s: Annotated[
        float, typer.Option("--max-staleness-s", help="Oldest acceptable last trade, seconds.")
    ] = 300.0,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="Only these symbols (repeatable).")
    ] = None,
    data_dir: DataDirOpt = None,
    warm_url: WarmUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fail if any symbol's last stored trade is older than --max-staleness-s."""
    from datetime import datetime

    from marketpipe.model.symbols import normalize

    try:
        rows = _positions(data_dir, warm_url, config)
        wanted = {normalize(s) for s in symbol} if symbol else None
    except (MarketpipeError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    now = time.time()
    problems = []
    checked = 0
    for row in rows:
        if wanted is not None and row["symbol"] not in wanted:
            continue
        checked += 1
        last = row["last_trade_time"]
        if last is None:
            problems.append(f"{row['exchange']} {row['symbol']}: no trades stored")
            continue
        age = now - datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
        if age > max_staleness_s:
            problems.append(
                f"{row['exchange']} {row['symbol']} is stale: last trade {last}, "
                f"{age:.0f} s ago (max {max_staleness_s:g} s)"
            )
    _report(problems, checked, "freshness")


@check_app.command()
def completeness(
    min_pct: Annotated[
        float, typer.Option("--min-pct", help="Lowest acceptable share of trade ids stored, %.")
    ] = 99.99,
    data_dir: DataDirOpt = None,
    warm_url: WarmUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fail if any symbol stores fewer than --min-pct of its trade ids (gaps not filled)."""
    try:
        rows = _positions(data_dir, warm_url, config)
    except MarketpipeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    problems = [
        f"{r['exchange']} {r['symbol']} is {100 * r['completeness']:.4f} % complete "
        f"({r['missing_ids']} trade ids missing; min {min_pct:g} %)"
        for r in rows
        if r["completeness"] is not None and 100 * r["completeness"] < min_pct
    ]  # a venue without trade ids cannot prove completeness, nor fail it
    _report(problems, len(rows), "completeness")


def backfill(
    symbol: Annotated[str, typer.Option("--symbol", help="BTCUSDT or BTC-USDT.")],
    start: Annotated[str, typer.Option("--start", help="Inclusive ISO-8601 UTC time.")],
    end: Annotated[str, typer.Option("--end", help="Exclusive ISO-8601 UTC time.")],
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Back-fill one symbol's trades in [start, end) over REST and recompute their candles."""
    from marketpipe.cli.common import parse_time, settings_from
    from marketpipe.embedded.backfill import backfill_range
    from marketpipe.model.symbols import normalize

    settings = settings_from(config, data_dir=data_dir)
    try:
        name = normalize(symbol)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--symbol") from None
    t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
    assert t0 is not None and t1 is not None
    try:
        done = asyncio.run(backfill_range(settings, name, t0, t1))
    except MarketpipeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"back-filled {done.symbol}: {done.fetched} trades fetched, {done.stored} stored, "
        f"{done.duplicates} already present, {done.candles} candle writes "
        f"in {done.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(check_app, name="check")
    app.command()(backfill)
