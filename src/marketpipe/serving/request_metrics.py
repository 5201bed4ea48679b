"""Counts and times every HTTP request by its route template (`/api/v3/klines`, not the raw
path, so the label set stays bounded), for the API's 5xx and latency alerts."""

import asyncio
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketpipe.observability import metrics as m

UNMATCHED = "unmatched"  # 404s on arbitrary paths share one label


class RequestMetricsMiddleware:
    """Pure ASGI (no per-request Request objects): it sits on the hottest path."""

    def __init__(self, app: ASGIApp, static_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        # Responses replayed by the reuse middleware never reach the router, so no route is
        # in their scope; their paths (`static_paths`) are route templates themselves.
        self.static_paths = static_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:  # the client went away: not an answer, not a 5xx
            raise
        except BaseException:
            self._note(scope, status, started)
            raise
        self._note(scope, status, started)

    def _note(self, scope: Scope, status: int, started: float) -> None:
        route = _route_template(scope, self.static_paths)
        m.API_REQUESTS.labels(scope["method"], route, str(status)).inc()
        m.API_REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


def _route_template(scope: Scope, static_paths: frozenset[str]) -> str:
    # FastAPI's router puts the matched route into the (shared) scope.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return scope["path"] if scope["path"] in static_paths else UNMATCHED
