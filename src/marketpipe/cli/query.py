"""`query` and `status`: what a data dir holds, asked of it or of the pipeline that holds it."""

import csv
import io
import sys
import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from marketpipe.cli.common import (
    ConfigOpt,
    console,
    fail,
    parse_time,
    read_rows,
    settings_from,
    stdout_console,
)
from marketpipe.model.errors import MarketpipeError
from marketpipe.model.intervals import INTERVALS
from marketpipe.model.symbols import normalize


class Kind(StrEnum):
    candles = "candles"
    trades = "trades"
    alerts = "alerts"


class OutputFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    table = "table"


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
        raise fail(f"--interval {interval!r} is not one of {', '.join(INTERVALS)}", 2)
    if limit is not None and limit < 1:
        raise fail(f"--limit must be 1 or more, not {limit}", 2)
    t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise fail(f"--start ({start}) must be before --end ({end}); the end is exclusive", 2)
    configured = settings_from(config).configured_symbols()
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
        rows = read_rows(data_dir, f"/api/v1/query/{kind.value}", params, read)
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    _print_rows(rows, fmt)


def _check_question(
    positions: list[Any],
    configured: dict[str, list[str]],
    data_dir: Path,
    exchange: str | None,
    symbol: str | None,
) -> tuple[str | None, str | None]:
    """The exchange and normalized symbol of a possible question; an error naming what does
    not exist otherwise (see SymbolDirectory for what exists)."""
    from marketpipe.serving.market import (
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
            raise fail(
                f"unknown exchange {exchange!r}: {data_dir} holds {stored}, and the configured "
                f"venues are {', '.join(configured)}; `marketpipe status --data-dir {data_dir}` "
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
        raise fail(
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
        stdout_console().print(table)


def status(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The data dir to inspect.")],
) -> None:
    """Per symbol: last trade, completeness, gaps found and filled, lag."""
    from marketpipe.serving.rows import position_row

    try:
        rows = read_rows(
            data_dir,
            "/api/v1/query/positions",
            {},
            lambda store: [position_row(p) for p in store.warm.positions()],
        )
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
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
            _percent(row["completeness"]), str(row["missing_ids"]), str(row["gaps_found"]),
            str(row["gaps_filled"]), str(row["duplicates"]), "-" if lag is None else _human(lag),
        )  # fmt: skip
    stdout_console().print(table)
    if not rows:  # a valid question, no answer yet
        console.print(f"no trades stored in {data_dir} yet", soft_wrap=True)


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(status)


def _percent(completeness: float | None) -> str:
    return "not provable" if completeness is None else f"{100 * completeness:.4f} %"
