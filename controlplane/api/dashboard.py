"""The dashboard's pages: the built single-page application under ``/dashboard/``.

Owns :func:`dashboard_routes`: the built files (``make dashboard``, shipped in the wheel), with
``index.html`` for any page path, the security headers (:data:`SECURITY_HEADERS`) and 503 without
a build. No authentication: the files hold no data. See docs/dashboard.md, "Building it".
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

ASSETS = Path(__file__).parent / "dashboard_assets"
"""Where ``make dashboard`` puts the built pages."""
NOT_BUILT = "the dashboard is not built: run `make dashboard`"
PREFIX = "/dashboard/"
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


def _file(root: Path, path: str) -> Path | None:
    """The file ``path`` names under ``root``, None when there is none (or it is outside)."""
    base = root.resolve()
    try:
        target = (base / path).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def dashboard_routes(directory: Path | None = None) -> APIRouter:
    """The pages of the dashboard built in ``directory`` (default :data:`ASSETS`)."""
    router = APIRouter(include_in_schema=False)
    root = directory or ASSETS

    @router.api_route("/", methods=["GET", "HEAD"])
    def home() -> Response:
        return RedirectResponse(PREFIX, status_code=302, headers=SECURITY_HEADERS)

    @router.api_route("/dashboard", methods=["GET", "HEAD"])
    def bare() -> Response:
        return RedirectResponse(PREFIX, status_code=302, headers=SECURITY_HEADERS)

    @router.api_route("/dashboard/{path:path}", methods=["GET", "HEAD"])
    def page(path: str) -> Response:
        index = root / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=503, headers=SECURITY_HEADERS)
        found = _file(root, path) if path else None
        if found is not None and found.name != "index.html":
            cache = IMMUTABLE if path.startswith("assets/") else NO_CACHE
            return FileResponse(found, headers={**SECURITY_HEADERS, "Cache-Control": cache})
        if path.startswith("assets/"):
            return PlainTextResponse("not found", status_code=404, headers=SECURITY_HEADERS)
        return FileResponse(
            index,
            media_type="text/html",
            headers={**SECURITY_HEADERS, "Cache-Control": NO_CACHE},
        )

    return router
