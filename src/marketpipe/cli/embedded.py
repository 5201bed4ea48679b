"""`run`, `demo` and `replay`: the embedded pipeline, live, offline or from files."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from marketpipe.cli.signals import StopRequest, stop_signals
from marketpipe.model.errors import MarketpipeError

if TYPE_CHECKING:  # the app (and every layer) loads only when a command needs it
    from marketpipe.config import Settings
    from marketpipe.embedded.live import LiveRun

from marketpipe.cli.common import (
    ConfigOpt,
    DataDirOpt,
    PortOpt,
    console,
    fail,
    settings_from,
)

# ---- run / demo --------------------------------------------------------------------------

DEMO_SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT"
VenuesOpt = Annotated[
    str | None,
    typer.Option(
        "--venues",
        help="Comma-separated venues to run, e.g. binance,coinbase (default: the config's "
        "`venues`); --symbols then applies to each of them.",
    ),
]


def _choose_venues(settings: "Settings", venues: str | None, symbols: str | None) -> "Settings":
    if venues is None:
        return settings
    try:
        listed = symbols.replace(" ", ",").split(",") if symbols else None
        return settings.choose_venues([v for v in venues.split(",") if v.strip()], listed)
    except ValueError as exc:
        raise fail(f"--venues: {exc}", 2) from None


def run(
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols", help="Comma-separated, e.g. BTCUSDT,ETHUSDT (default: 20 USDT pairs)."
        ),
    ] = None,
    venues: VenuesOpt = None,
    data_dir: DataDirOpt = None,
    port: PortOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Live venues -> candles and alerts in DuckDB + Parquet, with the API on --port."""
    from marketpipe.embedded.live import LiveRun
    from marketpipe.sources.venues import display_name

    settings = settings_from(config, symbols=symbols, data_dir=data_dir)
    settings = _choose_venues(settings, venues, symbols)
    if port is not None:
        settings.api.port = port
    live = LiveRun(settings)
    what = "live " + ", ".join(display_name(name) for name in settings.venues)
    _run_live(live.run(None, lambda r: _announce(r, what)), {"live": live})


def demo(
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Stop after this many seconds (default: until Ctrl-C)."),
    ] = None,
    data_dir: DataDirOpt = None,
    port: PortOpt = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols",
            help="Comma-separated symbols to simulate [default: BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,"
            "XRPUSDT on Binance, each other venue's own list (BTC-USD, ETH-USD)].",
        ),
    ] = None,
    venues: Annotated[
        str | None,
        typer.Option(
            "--venues",
            help="Comma-separated venues to simulate [default: every venue the simulator "
            "speaks]; --symbols then applies to each of them.",
        ),
    ] = None,
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
    diverge: Annotated[
        list[str] | None,
        typer.Option(
            "--diverge",
            help="Move one venue's price away for a while: venue:asset:bps:start_s:duration_s, "
            "e.g. kraken:BTC:80:30:150 (the venue_divergence alert's scenario; repeatable).",
        ),
    ] = None,
    market_hours: Annotated[
        bool,
        typer.Option(
            "--market-hours",
            help="Simulated stocks (Finnhub) keep US market hours, 09:30-16:00 New York on "
            "weekdays, with no trades and so no candles while closed [default: around the "
            "clock, so the demo always shows them; config: simulator.market_hours].",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """The whole pipeline offline: the real connectors against local simulated venues."""
    from marketpipe.embedded.demo import demo as run_demo
    from marketpipe.embedded.demo import demo_venues
    from marketpipe.simulator import FaultPlan

    settings = settings_from(
        config, symbols=symbols or DEMO_SYMBOLS, data_dir=data_dir or Path("data/demo")
    )
    if venues is None and "venues" not in settings.model_fields_set:
        venues = ",".join(demo_venues())  # not configured anywhere: every simulated venue
        symbols = None  # --symbols alone is Binance's; the others keep their own lists
    settings = _choose_venues(settings, venues, symbols)
    if port is not None:
        settings.api.port = port
    rate = rate if rate is not None else settings.simulator.trades_per_second
    try:
        plan = None if faults is None else FaultPlan.parse(faults)
    except ValueError as exc:
        raise fail(f"--faults: {exc}", 2) from None
    from marketpipe.simulator.divergence import Divergence

    try:
        divergences = [Divergence.parse(text) for text in diverge or []]
    except ValueError as exc:
        raise fail(f"--diverge: {exc}", 2) from None
    holder: dict[str, LiveRun] = {}

    def ready(live: "LiveRun") -> None:
        holder["live"] = live
        _announce(live, f"simulated exchange, {rate:g} trades/s")

    _run_live(
        run_demo(
            settings,
            duration_s=duration,
            trades_per_second=rate,
            faults=plan,
            ready=ready,
            divergences=divergences,
            market_hours=market_hours or settings.simulator.market_hours,
        ),
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
            await asyncio.gather(display, return_exceptions=True)

    with stop_signals() as request:  # Ctrl-C and SIGTERM alike
        try:
            asyncio.run(main(request))
        except KeyboardInterrupt:
            pass  # a second signal: stopped at once
        except MarketpipeError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"{exc} (is the port in use? pick another with --port)") from None
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
        "venue",
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
            column, justify="right" if column not in ("venue", "symbol", "open time") else "left"
        )
    rows = [(v, s) for v in live.settings.venues for s in live.settings.venue_symbols(v)]
    for venue, symbol in rows:
        candles = live.store.hot.candles(venue, symbol, "1m")
        if not candles:
            continue
        c = candles[-1]
        table.add_row(
            venue, symbol, datetime.fromtimestamp(c.open_time / 1e6, UTC).strftime("%H:%M"),
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


# One string per paragraph: rich keeps a docstring's line breaks, so --help would break
# mid-sentence at the source's line width.
REPLAY_HELP = "\n\n".join(
    [
        "Replay recordings through the same pipeline as live; end of input finalizes all windows.",
        "Formats, detected from each file's content:",
        "- [bold]<recv_ns> <json>[/bold] lines: Binance combined-stream frames as recorded "
        "(any venue's frames with --venue).",
        "- [bold]cryptofeed recordings[/bold] (cryptofeed-COINBASE.ws.28.0, "
        "cryptofeed-KRAKEN.ws.48.0, cryptofeed-BINANCE.ws.1.0, .gz ok): the venue comes from "
        "the file name, or from the URL of its first (connect) line.",
        "- [bold]capture JSONL[/bold], as `marketpipe query trades --format jsonl` writes it, "
        "for any venue: each line's exchange, or --venue.",
        "- [bold]Binance trade CSVs[/bold] (BTCUSDT-trades-2024-08-09.csv or .zip, ms or µs).",
        "Each venue's frames go through that venue's own parser, as live (Coinbase's maker "
        "side becomes the taker's; Kraken v1 trades get arrival keys). A frame that does not "
        "parse is stored in dead_letters under file:line and counted, never fatal. An unknown "
        "venue fails before any work, naming it. A file damaged part way keeps the lines "
        "before the break, names its line and byte, and exits 1. Replaying the same files "
        "into the same --data-dir again changes nothing.",
    ]
)


def replay(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files to replay, in order: frame recordings (<recv_ns> <json> or "
            "cryptofeed's), capture JSONL or Binance trade CSVs; .gz (and .zip for CSVs) ok."
        ),
    ],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where to store the results.")],
    speed: Annotated[
        str, typer.Option("--speed", help="'max' (default) or a pace like '10x' event time.")
    ] = "max",
    venue: Annotated[
        str | None,
        typer.Option(
            "--venue",
            help="The venue of every file (binance, coinbase, kraken, finnhub), overriding "
            "what a file names: a cryptofeed recording's name, a capture line's exchange, "
            "Binance for <recv_ns> <json>.",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Replay recordings through the same pipeline as live (REPLAY_HELP says more)."""
    from marketpipe.embedded.replay import replay as run_replay
    from marketpipe.sources.replay import ReplayReader

    pace = _parse_speed(speed)
    settings = settings_from(config, data_dir=data_dir)
    try:
        total = ReplayReader(
            paths, venue=venue, venue_settings=settings.venue_settings
        ).total_bytes()
        with Progress(
            TextColumn("replay"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("replay", total=total)
            summary = run_replay(
                settings,
                paths,
                speed=pace,
                progress=lambda n: bar.advance(task, n),
                venue=venue,
            )
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    table = Table(title="replay summary", show_header=False)
    for name, value in (
        ("files", summary.files), ("venues", ", ".join(sorted(summary.venues)) or "-"),
        ("trades read", summary.trades_read),
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


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(demo)
    app.command(help=REPLAY_HELP)(replay)
