"""Which web origins may call the gateway: ``stirfried_cors_origins``, and its own on loopback.

The gateway cannot know its public name from a request: the ``Host`` header is
the client's to write, so a DNS-rebinding page (``Host`` and ``Origin`` both
``evil.example``) would look same-origin. So a page is "the gateway's own" only
when ``Host`` names a loopback address (the development setup); a deployment
lists its public origins (``https://tasks.example.com``) in ``stirfried_cors_origins``.

One policy for both APIs: python-engineio asks it for every Socket.IO
handshake, and the HTTP middleware below adds CORS headers (and answers
preflight requests) only for allowed origins. Browsers refuse other origins'
pages the responses; non-browser clients are unaffected, so CORS is not
authentication: tokens are.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"


class OriginPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origin.rstrip("/") for origin in origins)

    def allows(self, origin: str, own_origin: str | None) -> bool:
        return origin.rstrip("/") in self._origins or (own_origin is not None and origin == own_origin)

    def for_engineio(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        """python-engineio's ``cors_allowed_origins`` callable."""
        if not origin:
            return True
        return self.allows(
            origin, loopback_origin(environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST"))
        )

    def own_origin(self, request: web.Request) -> str | None:
        return loopback_origin(request.scheme, request.host)

    def middleware(self) -> Middleware:
        """Answers CORS preflight requests (``OPTIONS`` with ``Access-Control-Request-Method``)."""

        @web.middleware
        async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            if (
                origin
                and request.method == "OPTIONS"
                and "Access-Control-Request-Method" in request.headers
                and not request.path.startswith("/socket.io")
            ):
                return web.Response(status=204 if self.allows(origin, self.own_origin(request)) else 403)
            return await handler(request)

        return preflight

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """``on_response_prepare``: CORS headers for allowed origins (streams included)."""
        origin = request.headers.get("Origin")
        if not origin or request.path.startswith("/socket.io"):
            return  # Socket.IO sets its own (see for_engineio)
        if self.allows(origin, self.own_origin(request)):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def loopback_origin(scheme: str, host: str | None) -> str | None:
    """``scheme://host`` when ``host`` names a loopback address, else None."""
    if not host:
        return None
    try:
        hostname = urllib.parse.urlsplit(f"//{host}").hostname
    except ValueError:
        return None
    return f"{scheme}://{host}" if hostname in LOOPBACK_HOSTS else None
