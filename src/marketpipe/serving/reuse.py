"""Reuse of whole responses for hot polling paths (e.g. the newest 500 klines).

A GET on a listed path whose exact query string was answered 200 at the current data version
is replayed from memory before routing and parameter parsing, which are most of a cached
request's cost. It sits inside the token check and the rate limiter, so both still apply to
every request. The data version (the store's commit sequence) changes on every commit, which
drops every reused response at once.
"""

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ENTRIES = 1024


class ResponseReuseMiddleware:
    def __init__(self, app: ASGIApp, version: Callable[[], int], paths: frozenset[str]) -> None:
        self.app = app
        self.version = version
        self.paths = paths
        self._entries: dict[tuple[str, bytes], tuple[int, list[tuple[bytes, bytes]], bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        key = (scope["path"], bytes(scope.get("query_string", b"")))
        version = self.version()
        hit = self._entries.get(key)
        if hit is not None and hit[0] == version:
            await send({"type": "http.response.start", "status": 200, "headers": hit[1]})
            await send({"type": "http.response.body", "body": hit[2]})
            return
        captured: dict[str, object] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    captured["done"] = True
            await send(message)

        await self.app(scope, receive, capture)
        # Keep only complete 200s computed entirely at one data version.
        if captured.get("status") == 200 and captured.get("done") and self.version() == version:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            headers = captured["headers"]
            assert isinstance(headers, list)
            self._entries[key] = (version, headers, b"".join(chunks))
