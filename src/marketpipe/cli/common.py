"""What every command shares: the options, loading settings, failing with one line,
user-given times, and reading rows from a data dir or from the pipeline that holds it."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from marketpipe.config import Settings, load_settings
from marketpipe.model import times
from marketpipe.model.errors import MarketpipeError, StorageError
from marketpipe.observability.logging import configure_logging

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


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config, **overrides)
    except MarketpipeError as exc:
        # Escaped: `[engine]` in a message is a section name, not markup. Not wrapped: one
        # line per problem, whatever the width.
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def stdout_console() -> Console:
    # Piped output gets wide rows rather than columns folded to 80 characters.
    return Console(width=None if sys.stdout.isatty() else 250)


def fail(message: str, code: int = 1) -> typer.Exit:
    # One line even when piped; the message is text, never rich markup (paths may hold "[").
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def parse_time(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return times.parse_time(text, epoch_ms=False)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


def from_running(data_dir: Path, path: str, params: dict[str, Any]) -> Any:
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
            raise fail(_refusal(response), 2)
        response.raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        raise fail(
            f"{data_dir} is in use by pid {info['pid']}, and its API at {url} failed: {exc}"
        ) from None
    return response.json()


def read_rows(data_dir: Path, path: str, params: dict[str, Any], read: Any) -> Any:
    from marketpipe.embedded.stores import open_reader
    from marketpipe.storage.embedded import DataDir

    if not data_dir.exists():  # say so, rather than create an empty one
        raise fail(
            f"no data in {data_dir}: the directory does not exist (check --data-dir; "
            "`marketpipe replay` or `marketpipe demo` creates one)"
        )
    if not data_dir.is_dir():
        raise fail(f"{data_dir} is not a directory (--data-dir takes a replay's, run's or demo's)")
    if not DataDir(data_dir).warm.is_file():
        raise fail(f"no data in {data_dir}: run `marketpipe replay` or `marketpipe demo` first")
    try:
        store = open_reader(data_dir)
    except StorageError:
        rows = from_running(data_dir, path, params)
        if rows is None:
            raise
        return rows
    try:
        return read(store)
    finally:
        store.close()


def _refusal(response: httpx.Response) -> str:
    """The running API's reason for a 4xx: its JSON `detail`, else the body as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("detail", response.text)) if isinstance(body, dict) else response.text
