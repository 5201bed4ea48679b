"""Per-client rate limiting with the `limits` library, as an ASGI middleware.

A client is its token when the API requires one (then every token was checked), else its IP:
an unchecked token would give whoever invents new ones a fresh budget each time. Responses
carry `X-RateLimit-Limit`, `-Remaining` and `-Reset`; over the limit it is `429` with
`Retry-After` (and Binance's -1003 body on `/api/v3`). Health, metrics and page assets are
exempt; the dashboard's own API calls (`X-Marketpipe-Client: dashboard`) draw on a separate,
generous budget so a busy API never starves the page.
"""

import math
import time

import msgspec
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketpipe.serving.errors import TOO_MANY_REQUESTS, binance_body, is_binance_path
from marketpipe.serving.security import is_public, presented_token

DASHBOARD_HEADER = b"x-marketpipe-client"


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, limit: str, dashboard_limit: str, *, by_token: bool = False
    ) -> None:
        self.app = app
        self.by_token = by_token
        self.limit = parse(limit)
        self.dashboard_limit = parse(dashboard_limit)
        # limits' asyncio storage: the sync one starts a timer thread every 10 ms under load.
        self.limiter = FixedWindowRateLimiter(MemoryStorage())

    def _client(self, scope: Scope) -> tuple[RateLimitItem, str]:
        headers = dict(scope.get("headers") or ())
        token = presented_token(scope) if self.by_token else None
        who = f"token:{token}" if token else f"ip:{(scope.get('client') or ('?', 0))[0]}"
        if headers.get(DASHBOARD_HEADER) == b"dashboard":
            return self.dashboard_limit, f"dashboard:{who}"
        return self.limit, who

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        item, who = self._client(scope)
        allowed = await self.limiter.hit(item, who)
        stats = await self.limiter.get_window_stats(item, who)
        reset = math.ceil(stats.reset_time)
        headers = [
            (b"x-ratelimit-limit", str(item.amount).encode()),
            (b"x-ratelimit-remaining", str(max(0, stats.remaining)).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]
        if not allowed:
            retry = max(1, reset - int(time.time()))
            if is_binance_path(scope["path"]):
                body = binance_body(
                    TOO_MANY_REQUESTS,
                    f"Too much request weight used; current limit is {item.amount} request "
                    f"weight per {item.get_expiry()} seconds. Please use WebSocket Streams for "
                    "live updates to avoid polling the API.",
                )
            else:
                body = {"detail": f"rate limit {item} exceeded; retry in {retry} s"}
            payload = msgspec.json.encode(body)
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        *headers,
                        (b"retry-after", str(retry).encode()),
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
