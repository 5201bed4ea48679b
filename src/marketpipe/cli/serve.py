"""`serve`: the API over a data dir (read-only) or over cluster mode's stores."""

from typing import Annotated, Any

import typer

from marketpipe.cli.common import (
    ConfigOpt,
    DataDirOpt,
    PortOpt,
    console,
    fail,
    settings_from,
)
from marketpipe.cli.signals import StopRequest, run_server
from marketpipe.config import Settings
from marketpipe.model.errors import MarketpipeError
from marketpipe.serving.app import create_app


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
        raise fail(f"--backend must be embedded or cluster, not {backend!r}", 2)
    if backend == "cluster":
        try:
            request = _serve_cluster(settings_from(config), port)
        except MarketpipeError as exc:
            raise fail(str(exc)) from None
        if request.received is not None:
            console.print("stopped")
        return None

    from marketpipe.embedded.stores import open_reader
    from marketpipe.serving.backend import embedded_backend
    from marketpipe.serving.routes_marts import DuckDBMarts

    settings = settings_from(config, data_dir=data_dir)
    try:
        store = open_reader(settings.data_dir)
    except MarketpipeError as exc:
        raise fail(str(exc)) from None

    def health() -> dict[str, Any]:
        age = store.warm.last_commit_age_s()
        return {
            "status": "ok",
            "last_commit_age_s": age,
            "components": {"storage": {"status": "ok"}},
        }

    api = create_app(embedded_backend(store, health), settings.api)
    api.state.marts = DuckDBMarts(settings.data_dir)
    api.state.view.configure_symbols(settings.configured_symbols())  # valid before their data
    server = uvicorn.Server(
        uvicorn.Config(api, host=settings.api.host, port=port or settings.api.port, log_config=None)
    )
    try:
        request = run_server(server)  # until Ctrl-C or SIGTERM
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    if request.received is not None:
        console.print("stopped")


def _serve_cluster(settings: Settings, port: int | None) -> StopRequest:
    import uvicorn

    from marketpipe.cluster.serving import cluster_serving

    """Serve until SIGINT or SIGTERM; raises MarketpipeError if a server is unreachable."""
    serving = cluster_serving(settings)
    try:
        config = uvicorn.Config(
            create_app(serving.backend, settings.api),
            host=settings.api.host,
            port=port or settings.api.port,
            log_config=None,
        )
        return run_server(uvicorn.Server(config))
    finally:
        serving.close()


def register(app: typer.Typer) -> None:
    app.command()(serve)
