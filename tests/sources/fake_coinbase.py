"""A scriptable stand-in for Coinbase Exchange's public REST trade history.

`GET /products/{id}/trades?limit=&after=` as Coinbase documents it: newest first; `after=ID`
answers the newest `limit` trades with ids below ID; `CB-BEFORE`/`CB-AFTER` hold the page's
newest and oldest id; `side` is the maker's; an unknown product is 404 `NotFound`. Faults are
scripted as `(status, headers)` pairs, served first.
"""

import time
from typing import Any

from aiohttp import web

from marketpipe.sources.coinbase.settings import CoinbaseSettings


def trade_row(trade_id: int) -> dict[str, Any]:
    """Trade `trade_id`'s row: values derived from the id, so tests can recompute them."""
    return {
        "time": f"2024-01-01T00:00:{trade_id % 60:02d}.{trade_id % 1_000_000:06d}Z",
        "trade_id": trade_id,
        "price": f"{100 + trade_id % 7}.25",
        "size": "0.5",
        "side": "sell" if trade_id % 2 else "buy",  # the maker's side
    }


class FakeCoinbaseRest:
    def __init__(self, products: dict[str, int] | None = None) -> None:
        # product -> newest trade id; ids run 1..newest
        self.newest = products or {"BTC-USD": 0}
        self.faults: list[tuple[int, dict[str, str]]] = []
        self.calls: list[tuple[str, dict[str, str], float]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "FakeCoinbaseRest":
        app = web.Application()
        app.router.add_get("/products/{product}/trades", self._trades)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _trades(self, request: web.Request) -> web.Response:
        product = request.match_info["product"]
        params = dict(request.query)
        self.calls.append((product, params, time.monotonic()))
        if self.faults:
            status, headers = self.faults.pop(0)
            return web.json_response({"message": f"fault {status}"}, status=status, headers=headers)
        if product not in self.newest:
            return web.json_response({"message": "NotFound"}, status=404)
        limit = int(params.get("limit", "1000"))
        if not 1 <= limit <= 1000:
            return web.json_response({"message": "Invalid limit"}, status=400)
        top = self.newest[product]
        if "after" in params:
            top = min(top, int(params["after"]) - 1)
        ids = list(range(top, max(0, top - limit), -1))
        headers = {"CB-BEFORE": str(ids[0]), "CB-AFTER": str(ids[-1])} if ids else {}
        return web.json_response([trade_row(i) for i in ids], headers=headers)


def rest_settings(fake: FakeCoinbaseRest, **overrides: object) -> CoinbaseSettings:
    values: dict[str, object] = {
        "ws_url": "ws://127.0.0.1:9",
        "rest_url": fake.rest_url,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "rest_timeout_s": 2.0,
        "rate_limit_pause_s": 0.3,
    }
    values.update(overrides)
    return CoinbaseSettings.model_validate(values)
