"""Optional bearer token for everything but health, metrics and the (data-free) page assets.

Accepted as `Authorization: Bearer <token>`, as a Binance API key (`X-MBX-APIKEY`, so Binance
clients pass it as their key), or as `?token=` (browsers cannot set WebSocket headers).
"""

import hmac
from urllib.parse import parse_qs

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from marketpipe.serving.errors import BAD_API_KEY, binance_body, is_binance_path

PUBLIC_PATHS = frozenset({"/api/v1/system/health", "/metrics", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/dashboard/", "/docs", "/redoc", "/openapi.json")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def presented_token(scope: Scope) -> str | None:
    headers: dict[bytes, bytes] = dict(scope.get("headers") or ())
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    key = headers.get(b"x-mbx-apikey")
    if key:
        return key.decode("latin-1").strip()
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    tokens = query.get("token")
    return str(tokens[0]) if tokens else None


class BearerTokenMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = presented_token(scope)
        if given is not None and hmac.compare_digest(given.encode(), self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid token"})
            return
        if is_binance_path(scope["path"]):
            body = binance_body(BAD_API_KEY, "Invalid API-key, IP, or permissions for action.")
        else:
            body = {"detail": "missing or invalid bearer token (Authorization: Bearer <token>)"}
        payload = msgspec.json.encode(body)
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
