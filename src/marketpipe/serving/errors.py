"""Errors as clients expect them, never a stack trace.

`/api/v3` (Binance-compatible) answers `{"code": <Binance code>, "msg": ...}`; the native API
answers `{"detail": ...}`. Anything unexpected is logged here and becomes a bare 500.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketpipe.model.errors import MarketpipeError, QueryError

log = logging.getLogger(__name__)

# Binance's codes (developers.binance.com, "Error codes for Binance").
UNKNOWN = -1000
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
PARAM_EMPTY = -1105
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
BAD_COMBO = -1128
INVALID_PARAMETER = -1130
BAD_API_KEY = -2015


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def binance_body(code: int, msg: str) -> dict[str, object]:
    return {"code": code, "msg": msg}


def is_binance_path(path: str) -> bool:
    return path.startswith("/api/v3")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BinanceError)
    async def _binance(request: Request, exc: BinanceError) -> JSONResponse:
        return JSONResponse(binance_body(exc.code, exc.msg), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        if is_binance_path(request.url.path):
            first = exc.errors()[0] if exc.errors() else {}
            name = str(first.get("loc", ("", "?"))[-1])
            if first.get("type") == "missing":
                msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                return JSONResponse(binance_body(MANDATORY_PARAM, msg), status_code=400)
            msg = f"Illegal characters found in parameter '{name}'."
            return JSONResponse(binance_body(ILLEGAL_CHARS, msg), status_code=400)
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(QueryError)
    async def _query(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(MarketpipeError)
    async def _storage(request: Request, exc: MarketpipeError) -> JSONResponse:
        log.warning("request failed: %s", exc)
        if is_binance_path(request.url.path):
            return JSONResponse(
                binance_body(UNKNOWN, "Internal error; unable to process your request."), 503
            )
        return JSONResponse({"detail": "storage temporarily unavailable"}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if is_binance_path(request.url.path):
            code = {401: UNAUTHORIZED, 404: UNKNOWN, 405: UNKNOWN}.get(exc.status_code, UNKNOWN)
            return JSONResponse(
                binance_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        if is_binance_path(request.url.path):
            return JSONResponse(
                binance_body(UNKNOWN, "An unknown error occurred while processing the request."),
                status_code=500,
            )
        return JSONResponse({"detail": "internal error"}, status_code=500)
