"""The API application factory: native REST, Binance-compatible REST and WebSocket, metrics,
the dashboard, and the cross-cutting guards (token, CORS, rate limits, error bodies).

Everything it serves comes from the injected `Backend`, so embedded and cluster mode share
every route. Other modules extend the app with `app.include_router(...)`.
"""

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.observability.metrics import REGISTRY
from marketpipe.serving.backend import Backend
from marketpipe.serving.dashboard import dashboard_router
from marketpipe.serving.errors import install_error_handlers
from marketpipe.serving.market import MarketView
from marketpipe.serving.pipeline_stats import PipelineStats, with_problems
from marketpipe.serving.ratelimit import RateLimitMiddleware
from marketpipe.serving.request_metrics import RequestMetricsMiddleware
from marketpipe.serving.reuse import ResponseReuseMiddleware
from marketpipe.serving.routes_binance import BinanceRoutes
from marketpipe.serving.routes_market_data import market_data_router
from marketpipe.serving.routes_marts import marts_router
from marketpipe.serving.routes_native import NativeRoutes, health_response
from marketpipe.serving.security import BearerTokenMiddleware
from marketpipe.serving.settings import ApiSettings
from marketpipe.serving.ws_binance import StreamHub, websocket_router

# Polled with identical queries by charts and bots; answers change only with a commit.
REUSABLE_PATHS = frozenset({"/api/v3/klines", "/api/v3/uiKlines"})

DESCRIPTION = """\
Market data from marketpipe's pipeline.

* **/api/v1** — native REST: market overview, candles of every interval (with `is_final` and
  `revision`), market snapshots (CoinGecko market caps), alerts, health.
* **/api/v3** — Binance-compatible REST: point Binance clients here.
* **/ws/&lt;stream&gt;**, **/stream?streams=a/b** — Binance-compatible WebSocket streams.
* **/metrics** — Prometheus. **/** — the live dashboard.

With `MARKETPIPE_API__TOKEN` set, send `Authorization: Bearer <token>` (or `X-MBX-APIKEY`).
"""


def create_app(
    backend: Backend,
    settings: ApiSettings | None = None,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API over `backend`. `extra_routers` (routes of other modules) get the
    same token, CORS, rate limits and error bodies as every built-in route."""
    settings = settings or ApiSettings()
    # FastAPI's built-in OpenTelemetry looks up the global providers on every request (14 %
    # of a trivial request's profile); marketpipe exports Prometheus metrics instead.
    app = FastAPI(
        title="marketpipe", version="0.1.0", description=DESCRIPTION,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )  # fmt: skip
    view = MarketView(backend)
    app.state.view = view
    install_error_handlers(app)

    @app.get(
        "/api/v1/system/health",
        tags=["system"],
        summary="Per-component status and the last commit age",
    )
    def health() -> JSONResponse:
        return health_response(with_problems(backend.status(), view.positions))

    @app.get("/metrics", tags=["system"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    native = NativeRoutes(view, PipelineStats(view))
    for router in native.routers():
        app.include_router(router)
    app.include_router(market_data_router(view))
    app.include_router(BinanceRoutes(view).router)
    app.include_router(marts_router())
    for router in extra_routers:
        app.include_router(router)
    hub = StreamHub(backend.broadcaster or CommitBroadcaster(), view)
    app.state.hub = hub
    app.include_router(websocket_router(hub))
    app.include_router(dashboard_router(settings.dashboard_dir))

    # Outermost last: CORS answers preflights before the token check; limits count real calls;
    # reuse replays a popular poll's response (after both guards) while the data is unchanged.
    if backend.version is not None:
        app.add_middleware(ResponseReuseMiddleware, version=backend.version, paths=REUSABLE_PATHS)
    token = settings.token.get_secret_value() if settings.token is not None else ""
    app.add_middleware(
        RateLimitMiddleware,
        limit=settings.rate_limit,
        dashboard_limit=settings.dashboard_rate_limit,
        by_token=bool(token),
    )
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)
    # Outside the guards, so refused (401/429) requests are counted too.
    app.add_middleware(RequestMetricsMiddleware, static_paths=REUSABLE_PATHS)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-MBX-APIKEY", "X-Marketpipe-Client"],
            expose_headers=[
                "X-Marketpipe-Tiers",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
        )
    return app
