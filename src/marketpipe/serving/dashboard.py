"""The dashboard at `/`: our page from `web/`, the charting library from `web/node_modules`
(installed by `make install` with npm, never copied into the repo)."""

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

CHART_LIBRARY = "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


def default_web_dir() -> Path:
    # src/marketpipe/serving/dashboard.py -> the repository's web/
    return Path(__file__).resolve().parents[3] / "web"


def dashboard_router(web_dir: Path | None) -> APIRouter:
    root = web_dir or default_web_dir()
    router = APIRouter(include_in_schema=False)

    def _file(relative: str, media_type: str) -> FileResponse:
        path = root / relative
        if not path.is_file():
            raise HTTPException(
                503, f"dashboard asset {relative} is missing in {root}: run `make install`"
            )
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @router.get("/", response_model=None)
    def page() -> FileResponse | HTMLResponse:
        return _file("index.html", "text/html")

    @router.get("/dashboard/vendor/lightweight-charts.js")
    def chart_library() -> FileResponse:
        return _file(CHART_LIBRARY, "text/javascript")

    @router.get("/dashboard/{name}")
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, "no such dashboard asset")
        return _file(name, ASSETS[name])

    return router
