"""`marketpipe serve --backend cluster`: the API over Redis, PostgreSQL and S3 ([cluster])."""

import uvicorn

from marketpipe.config import Settings
from marketpipe.serving.app import create_app
from marketpipe.serving.cluster_backend import cluster_serving


def serve_cluster(settings: Settings, port: int | None) -> None:
    """Serve until interrupted; raises MarketpipeError if a server is unreachable."""
    serving = cluster_serving(
        settings.cluster, hot_retention_us=settings.storage.hot_retention_minutes * 60_000_000
    )
    try:
        uvicorn.run(
            create_app(serving.backend, settings.api),
            host=settings.api.host,
            port=port or settings.api.port,
            log_config=None,
        )
    finally:
        serving.close()
