"""The command line: `marketpipe run | demo | replay | query | status | serve`."""

import asyncio
import csv
import io
import json
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import msgspec
import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from marketpipe import cli_cluster
from marketpipe.cli_signals import StopRequest, run_server, stop_signals
from marketpipe.config import Settings, load_settings
from marketpipe.model import times
from marketpipe.model.errors import MarketpipeError, StorageError
from marketpipe.model.intervals import INTERVALS
from marketpipe.model.symbols import normalize
from marketpipe.observability.logging import configure_logging

if TYPE_CHECKING:  # the app (and every layer) loads only when a command needs it
    from marketpipe.app import LiveRun

app = typer.Typer(
    help="marketpipe: exchange trades in; correct event-time candles, alerts, analytics out.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Settings file (default: ./marketpipe.toml).")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where DuckDB, the Parquet lake and state live.")
]
PortOpt = Annotated[
    int | None, typer.Option("--port", help="HTTP port of the API (health, metrics).")
]


class Kind(StrEnum):
    candles = "candles"
    trades = "trades"
    alerts = "alerts"


class OutputFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    table = "table"


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config, **overrides)
    except MarketpipeError as exc:
        # Escaped: `[engine]` in a message is a section name, not markup. Not wrapped: one
        # line per problem, whatever the width.
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _stdout_console() -> Console:
    # Piped output gets wide rows rather than columns folded to 80 characters.
    return Console(width=None if sys.stdout.isatty() else 250)


def _fail(message: str, code: int = 1) -> typer.Exit:
    # One line even when piped; the message is text, never rich markup (paths may hold "[").
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


# ---- run / demo --------------------------------------------------------------------------


@app.command()
def run(
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols", help="Comma-separated, e.g. BTCUSDT,ETHUSDT (default: 20 USDT pairs)."
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    port: PortOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Live Binance -> candles and alerts in DuckDB + Parquet, with the API on --port."""
    from marketpipe.app import LiveRun

    settings = _settings(config, symbols=symbols, data_dir=data_dir)
    if port is not None:
        settings.api.port = port
    live = LiveRun(settings)
    _run_live(live.run(None, lambda r: _announce(r, "live Binance")), {"live": live})


@app.command()
def demo(
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Stop after this many seconds (default: until Ctrl-C)."),
    ] = None,
    data_dir: DataDirOpt = None,
    port: PortOpt = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Comma-separated symbols to simulate.")
    ] = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT",
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Simulated trades/s over all symbols [default: 200]."),
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            help="Fault injection, e.g. 'chaos' or 'disconnect_every_s=5,duplicate_prob=0.01'.",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """The whole pipeline offline: the real connector against a local simulated exchange."""
    from marketpipe.app import demo as run_demo
    from marketpipe.simulator import FaultPlan

    settings = _settings(config, symbols=symbols, data_dir=data_dir or Path("data/demo"))
    if port is not None:
        settings.api.port = port
    rate = rate if rate is not None else settings.simulator.trades_per_second
    try:
        plan = None if faults is None else FaultPlan.parse(faults)
    except ValueError as exc:
        raise _fail(f"--faults: {exc}", 2) from None
    holder: dict[str, LiveRun] = {}

    def ready(live: "LiveRun") -> None:
        holder["live"] = live
        _announce(live, f"simulated exchange, {rate:g} trades/s")

    _run_live(
        run_demo(settings, duration_s=duration, trades_per_second=rate, faults=plan, ready=ready),
        holder,
    )


def _announce(live: Any, what: str) -> None:
    console.print(
        f"[green]marketpipe[/green] {what} -> {live.settings.data_dir}  "
        f"API http://{live.settings.api.host}:{live.api_port}/api/v1/system/health  (Ctrl-C stops)"
    )


def _run_live(coro: Any, holder: dict[str, "LiveRun"]) -> None:
    async def main(request: StopRequest) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(coro)

        def stop() -> None:  # a clean stop once the run is up; during start-up, cancel it
            live = holder.get("live")
            if live is not None:
                live.stop()
            else:
                task.cancel()

        request.on_stop(lambda: loop.call_soon_threadsafe(stop))
        display = asyncio.create_task(_show_candles(holder))
        try:
            await task
        except asyncio.CancelledError:
            if request.received is None:
                raise
        finally:
            display.cancel()

    with stop_signals() as request:  # Ctrl-C and SIGTERM alike
        try:
            asyncio.run(main(request))
        except KeyboardInterrupt:
            pass  # a second signal: stopped at once
        except MarketpipeError as exc:
            raise _fail(str(exc)) from None
        except OSError as exc:
            raise _fail(f"{exc} (is the port in use? pick another with --port)") from None
    if request.received is not None:
        console.print("stopped")


async def _show_candles(holder: dict[str, "LiveRun"]) -> None:
    """Latest 1m candle per symbol, refreshed every second: watching candles grow."""
    if not console.is_terminal:
        while True:
            await asyncio.sleep(5)
            live = holder.get("live")
            if live is not None and live.pipeline is not None:
                t = live.pipeline.totals
                console.print(
                    f"trades={t.trades_stored} candles={t.candles} alerts={t.alerts}"
                    f" duplicates={t.duplicates}"
                )
    with Live(Table(), console=console, refresh_per_second=2) as view:
        while True:
            await asyncio.sleep(1)
            live = holder.get("live")
            if live is not None and live.store is not None:
                view.update(_candle_table(live))


def _candle_table(live: Any) -> Table:
    table = Table(title="latest 1m candles", expand=False)
    for column in (
        "symbol",
        "open time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "trades",
        "final",
    ):
        table.add_column(
            column, justify="right" if column not in ("symbol", "open time") else "left"
        )
    for symbol in live.settings.symbols:
        candles = live.store.hot.candles("binance", symbol, "1m")
        if not candles:
            continue
        c = candles[-1]
        table.add_row(
            symbol, datetime.fromtimestamp(c.open_time / 1e6, UTC).strftime("%H:%M"),
            f"{c.open:.6g}", f"{c.high:.6g}", f"{c.low:.6g}", f"{c.close:.6g}",
            f"{c.volume:.4g}", str(c.trade_count), "yes" if c.is_final else "",
        )  # fmt: skip
    if live.pipeline is not None:
        t = live.pipeline.totals
        table.caption = (
            f"trades {t.trades_stored}  duplicates {t.duplicates}  late {t.late}  alerts {t.alerts}"
        )
    return table


# ---- replay ------------------------------------------------------------------------------


def _parse_speed(speed: str) -> float | None:
    text = speed.strip().lower()
    if text == "max":
        return None
    try:
        value = float(text.removesuffix("x"))
    except ValueError:
        raise typer.BadParameter("use 'max' or a factor like '10x'") from None
    if value <= 0:
        raise typer.BadParameter("the factor must be positive")
    return value


@app.command()
def replay(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Recordings (<recv_ns> <json>, .gz ok), capture JSONL or Binance trade CSVs."
        ),
    ],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where to store the results.")],
    speed: Annotated[
        str, typer.Option("--speed", help="'max' (default) or a pace like '10x' event time.")
    ] = "max",
    config: ConfigOpt = None,
) -> None:
    """Replay recordings through the same pipeline as live; end of input finalizes all windows."""
    from marketpipe.app import replay as run_replay
    from marketpipe.sources.replay import ReplayReader

    pace = _parse_speed(speed)
    settings = _settings(config, data_dir=data_dir)
    try:
        total = ReplayReader(paths).total_bytes()
        with Progress(
            TextColumn("replay"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("replay", total=total)
            summary = run_replay(
                settings, paths, speed=pace, progress=lambda n: bar.advance(task, n)
            )
    except MarketpipeError as exc:
        raise _fail(str(exc)) from None
    table = Table(title="replay summary", show_header=False)
    for name, value in (
        ("files", summary.files), ("trades read", summary.trades_read),
        ("trades stored", summary.trades_stored),
        ("duplicates", summary.duplicates), ("late (beyond lateness)", summary.late),
        ("candle writes", summary.candles), ("alerts", summary.alerts),
        ("dead letters", summary.dead_letters),
        ("frames skipped (other streams)", summary.skipped_frames),
        ("trades to lake", summary.lake_trades), ("seconds", f"{summary.seconds:.2f}"),
        ("trades/s", f"{summary.trades_per_s:,.0f}"),
    ):  # fmt: skip
        table.add_row(name, str(value))
    console.print(table)
    unreadable = summary.dead_letters - len(summary.broken)
    if unreadable and summary.first_dead_letter is not None:
        console.print(
            f"[yellow]warning:[/yellow] {unreadable} line(s) were not records and are stored in "
            f"the dead_letters table of {settings.data_dir}; the first: "
            + escape(summary.first_dead_letter),
            soft_wrap=True,
        )
    for message in summary.broken:  # what was read before the break is stored
        console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    if summary.broken:
        raise typer.Exit(1)


# ---- query / status ----------------------------------------------------------------------


def _parse_time(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return times.parse_time(text, epoch_ms=False)
    except ValueError as exc:
        raise _fail(f"{name}: {exc}", 2) from None


def _from_running(data_dir: Path, path: str, params: dict[str, Any]) -> Any:
    """A running pipeline holds the DuckDB file; ask its API instead."""
    from marketpipe.storage.embedded import DataDir

    lock = DataDir(data_dir).lock
    if not lock.is_file():
        return None
    info = json.loads(lock.read_text())
    url = f"http://{info['host']}:{info['port']}{path}"
    try:
        response = httpx.get(
            url, params={k: v for k, v in params.items() if v is not None}, timeout=30
        )
        if response.is_client_error:  # the running API refused the question: say why
            raise _fail(str(response.json().get("detail", response.text)), 2)
        response.raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        raise _fail(
            f"{data_dir} is in use by pid {info['pid']}, and its API at {url} failed: {exc}"
        ) from None
    return response.json()


def _read_rows(data_dir: Path, path: str, params: dict[str, Any], read: Any) -> Any:
    from marketpipe.storage.embedded import DataDir, EmbeddedStore

    if not data_dir.exists():  # say so, rather than create an empty one
        raise _fail(
            f"no data in {data_dir}: the directory does not exist (check --data-dir; "
            "`marketpipe replay` or `marketpipe demo` creates one)"
        )
    if not data_dir.is_dir():
        raise _fail(f"{data_dir} is not a directory (--data-dir takes a replay's, run's or demo's)")
    if not DataDir(data_dir).warm.is_file():
        raise _fail(f"no data in {data_dir}: run `marketpipe replay` or `marketpipe demo` first")
    try:
        store = EmbeddedStore(data_dir, read_only=True)
    except StorageError:
        rows = _from_running(data_dir, path, params)
        if rows is None:
            raise
        return rows
    try:
        return read(store)
    finally:
        store.close()


@app.command()
def query(
    kind: Annotated[Kind, typer.Argument(help="What to read.")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="The data dir of a replay, run or demo.")
    ],
    exchange: Annotated[str | None, typer.Option("--exchange", help="e.g. binance")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="BTC-USDT or BTCUSDT")] = None,
    interval: Annotated[
        str, typer.Option("--interval", help="Candles: " + ", ".join(INTERVALS))
    ] = "1m",
    start: Annotated[
        str | None, typer.Option("--start", help="Inclusive ISO-8601 UTC time.")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="Exclusive ISO-8601 UTC time.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N rows.")] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="json (array), jsonl, csv or table.")
    ] = OutputFormat.table,
    config: ConfigOpt = None,
) -> None:
    """Read candles, trades or alerts; times are ISO-8601 UTC, candles sorted by open_time.

    A symbol or exchange that is neither stored nor configured is an error; a configured
    symbol without data yet gives no rows."""
    from marketpipe.serving.rows import to_rows

    if interval not in INTERVALS:
        raise _fail(f"--interval {interval!r} is not one of {', '.join(INTERVALS)}", 2)
    if limit is not None and limit < 1:
        raise _fail(f"--limit must be 1 or more, not {limit}", 2)
    t0, t1 = _parse_time(start, "--start"), _parse_time(end, "--end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise _fail(f"--start ({start}) must be before --end ({end}); the end is exclusive", 2)
    configured = _settings(config).symbols
    exch = exchange.lower() if exchange else None
    try:  # the spelling the running API (if any) is asked with; checked against data below
        norm_symbol = normalize(symbol) if symbol else None
    except ValueError:  # malformed: no data needed to say so
        _check_question([], configured, data_dir, None, symbol)  # raises, naming the symbol
        raise
    params = {
        "exchange": exch,
        "symbol": norm_symbol,
        "interval": interval,
        "start": t0,
        "end": t1,
        "limit": limit,
    }

    def read(store: Any) -> list[dict[str, Any]]:
        warm = store.warm
        exch, norm_symbol = _check_question(
            warm.positions(), configured, data_dir, exchange, symbol
        )
        if kind is Kind.candles:
            records = warm.candles(
                exchange=exch, symbol=norm_symbol, interval=interval, start=t0, end=t1, limit=limit
            )
        elif kind is Kind.trades:
            records = warm.trades(exchange=exch, symbol=norm_symbol, start=t0, end=t1, limit=limit)
        else:
            records = warm.alerts(exchange=exch, symbol=norm_symbol, start=t0, end=t1, limit=limit)
        return to_rows(records)

    try:
        rows = _read_rows(data_dir, f"/api/v1/query/{kind.value}", params, read)
    except MarketpipeError as exc:
        raise _fail(str(exc)) from None
    _print_rows(rows, fmt)


def _check_question(
    positions: list[Any],
    configured: list[str],
    data_dir: Path,
    exchange: str | None,
    symbol: str | None,
) -> tuple[str | None, str | None]:
    """The exchange and normalized symbol of a possible question; an error naming what does
    not exist otherwise (see SymbolDirectory for what exists)."""
    from marketpipe.serving.market import (
        CONFIGURED_EXCHANGE,
        SymbolDirectory,
        UnknownExchange,
        UnknownSymbol,
    )

    directory = SymbolDirectory.of(positions, configured)
    stored = ", ".join(sorted({ex for ex, _ in directory.stored})) or "no data yet"
    exch = None
    if exchange is not None:
        try:
            exch = directory.exchange(exchange)
        except UnknownExchange:
            raise _fail(
                f"unknown exchange {exchange!r}: {data_dir} holds {stored}, and the configured "
                f"venue is {CONFIGURED_EXCHANGE}; `marketpipe status --data-dir {data_dir}` "
                "lists what is stored",
                2,
            ) from None
    if symbol is None:
        return exch, None
    try:
        return exch, directory.resolve(symbol, exch)
    except UnknownSymbol:
        try:
            why = f"no data for {normalize(symbol)} in {data_dir}, and it is not configured"
        except ValueError as exc:
            why = f"{exc}; write it as BTC-USDT or BTCUSDT"
        on = f" on {exch}" if exch is not None else ""
        raise _fail(
            f"unknown symbol {symbol!r}{on}: {why}; `marketpipe status --data-dir {data_dir}` "
            "lists the stored symbols, `symbols` in marketpipe.toml (or MARKETPIPE_SYMBOLS) "
            "the configured ones",
            2,
        ) from None


def _print_rows(rows: list[dict[str, Any]], fmt: OutputFormat) -> None:
    out = sys.stdout
    if fmt is OutputFormat.json:
        out.write(msgspec.json.encode(rows).decode() + "\n")
    elif fmt is OutputFormat.jsonl:
        for row in rows:
            out.write(msgspec.json.encode(row).decode() + "\n")
    elif fmt is OutputFormat.csv:
        if rows:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            out.write(buffer.getvalue())
    else:
        table = Table(show_lines=False)
        for name in rows[0] if rows else ["(no rows)"]:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*(f"{v:.10g}" if isinstance(v, float) else str(v) for v in row.values()))
        _stdout_console().print(table)


@app.command()
def status(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The data dir to inspect.")],
) -> None:
    """Per symbol: last trade, completeness, gaps found and filled, lag."""
    from marketpipe.serving.rows import position_row

    try:
        rows = _read_rows(
            data_dir,
            "/api/v1/query/positions",
            {},
            lambda store: [position_row(p) for p in store.warm.positions()],
        )
    except MarketpipeError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"status of {data_dir}")
    for column in (
        "exchange",
        "symbol",
        "last trade id",
        "last trade (UTC)",
        "completeness",
        "missing",
        "gaps found",
        "gaps filled",
        "duplicates",
        "lag",
    ):
        table.add_column(column)
    now = time.time()
    for row in rows:
        last = row["last_trade_time"]
        lag = (
            now - datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() if last else None
        )
        table.add_row(
            row["exchange"], row["symbol"], str(row["last_trade_id"]), str(last),
            f"{100 * row['completeness']:.4f} %", str(row["missing_ids"]), str(row["gaps_found"]),
            str(row["gaps_filled"]), str(row["duplicates"]), "-" if lag is None else _human(lag),
        )  # fmt: skip
    _stdout_console().print(table)
    if not rows:  # a valid question, no answer yet
        console.print(f"no trades stored in {data_dir} yet", soft_wrap=True)


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


@app.command()
def serve(
    data_dir: DataDirOpt = None,
    port: PortOpt = None,
    config: ConfigOpt = None,
    backend: Annotated[
        str,
        typer.Option("--backend", help="embedded (a data dir) or cluster (Redis, PostgreSQL, S3)."),
    ] = "embedded",
) -> None:
    """Serve the API over an existing data dir (read-only), or over cluster mode's stores."""
    import uvicorn

    if backend not in ("embedded", "cluster"):
        raise _fail(f"--backend must be embedded or cluster, not {backend!r}", 2)
    if backend == "cluster":
        from marketpipe.cli_serve_cluster import serve_cluster

        try:
            request = serve_cluster(_settings(config), port)
        except MarketpipeError as exc:
            raise _fail(str(exc)) from None
        if request.received is not None:
            console.print("stopped")
        return None

    from marketpipe.serving.app import create_app
    from marketpipe.serving.backend import embedded_backend
    from marketpipe.serving.routes_marts import DuckDBMarts
    from marketpipe.storage.embedded import EmbeddedStore

    settings = _settings(config, data_dir=data_dir)
    try:
        store = EmbeddedStore(settings.data_dir, read_only=True)
    except MarketpipeError as exc:
        raise _fail(str(exc)) from None

    def health() -> dict[str, Any]:
        age = store.warm.last_commit_age_s()
        return {
            "status": "ok",
            "last_commit_age_s": age,
            "components": {"storage": {"status": "ok"}},
        }

    api = create_app(embedded_backend(store, health), settings.api)
    api.state.marts = DuckDBMarts(settings.data_dir)
    api.state.view.configure_symbols(settings.symbols)  # valid questions before their data
    server = uvicorn.Server(
        uvicorn.Config(api, host=settings.api.host, port=port or settings.api.port, log_config=None)
    )
    try:
        request = run_server(server)  # until Ctrl-C or SIGTERM
    except MarketpipeError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    if request.received is not None:
        console.print("stopped")


# Cluster roles (ingest, process, archive) and the dead-letter tools.
cli_cluster.register(app)

from marketpipe.cli_dbt import app as dbt_app  # noqa: E402
from marketpipe.cli_ops import register as register_ops  # noqa: E402

app.add_typer(dbt_app, name="dbt")
register_ops(app)  # check freshness|completeness, backfill
from marketpipe.cli_lifecycle import app as lifecycle_app  # noqa: E402

app.add_typer(lifecycle_app, name="lifecycle")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
