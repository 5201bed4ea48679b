"""`marketpipe serve --backend cluster`: the API over Redis, PostgreSQL and S3 ([cluster])."""

import uvicorn

from marketpipe.cli_signals import StopRequest, run_server
from marketpipe.config import Settings
from marketpipe.serving.app import create_app
from marketpipe.serving.cluster_backend import cluster_serving


def serve_cluster(settings: Settings, port: int | None) -> StopRequest:
    """Serve until SIGINT or SIGTERM; raises MarketpipeError if a server is unreachable."""
    serving = cluster_serving(
        settings.cluster, hot_retention_us=settings.storage.hot_retention_minutes * 60_000_000
    )
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
