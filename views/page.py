"""`GET /`: the live page, so that a person can see the gateway work without curl.

One HTML page and its own script and style sheet, shipped in `views/static/` and
served by the node itself: no build step, nothing loaded from anywhere else (the
Content-Security-Policy says so to the browser too). The page only calls the
public API (`/v1/orders`, its event stream, `/v1/cluster`, `/v1/inventory`,
`/v1/services`), so it needs nothing from the node that a script could not ask for.
These routes are not part of the API: they stay out of the OpenAPI document.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import Response

from .problems import Problem

router = APIRouter(include_in_schema=False)

STATIC_PACKAGE = "stategate.views.static"
"""views/static/, installed as data beside this module."""

STATIC_FILES = {
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
    "sse.js": "text/javascript; charset=utf-8",
    "partitioner.js": "text/javascript; charset=utf-8",
}
"""The files the page loads, by name, with their content types: nothing else under static/ is served."""

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def static_file(name: str) -> bytes:
    """A file of views/static/, read once (it ships inside the package)."""
    return files(STATIC_PACKAGE).joinpath(name).read_bytes()


@router.get("/")
async def live_page() -> Response:
    """The page: place an order and watch it, the cluster, the inventory, a service call."""
    return Response(static_file("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/static/{name}")
async def page_file(name: str) -> Response:
    """One of the page's scripts or its style sheet; 404 for any other name."""
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise Problem(404, f"No static file {name!r}.")
    return Response(static_file(name), media_type=content_type, headers=PAGE_HEADERS)
