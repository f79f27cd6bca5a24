"""Mount the browser pages on the API app: ``/login``, ``/desk``, ``/qa``, ``/wallboard``.

The pages are plain HTML with ES-module scripts under ``/static`` (no build
step, nothing fetched from the network). They call the JSON API of the same
app; ``/`` goes to ``/login``, whose script forwards a signed-in user to the
page of their role. The pages themselves carry no data, so they need no
credentials: every API call they make is checked by the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "STATIC_DIR", "mount_pages"]

STATIC_DIR = Path(__file__).parent / "static"

# Page path -> its HTML file under STATIC_DIR.
PAGES: dict[str, str] = {
    "/login": "login.html",
    "/desk": "desk.html",
    "/qa": "qa.html",
    "/wallboard": "wallboard.html",
}

# The pages load only this site's own scripts, styles and media, and are framed by
# no one; the HTML changes with the code (a stale cached page would call a changed API).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _page_route(file: Path) -> Callable[[], Awaitable[FileResponse]]:
    async def page() -> FileResponse:
        return FileResponse(file, media_type="text/html; charset=utf-8", headers=_HEADERS)

    return page


async def _root() -> RedirectResponse:
    return RedirectResponse("/login", status_code=307)


def mount_pages(app: FastAPI) -> None:
    """Add the static assets and the page routes to ``app`` (kept out of the OpenAPI document)."""
    missing = [name for name in PAGES.values() if not (STATIC_DIR / name).is_file()]
    if missing:
        raise RuntimeError(f"dialer/web/static is missing page files: {', '.join(missing)}")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
    for path, name in PAGES.items():
        app.add_api_route(
            path,
            _page_route(STATIC_DIR / name),
            methods=["GET"],
            include_in_schema=False,
            name=f"page_{name.removesuffix('.html')}",
        )
