"""The example page: pick an example task, send it, watch its events arrive.

Static files, no build step for page users: ``static/app.js`` is an ES module
using the ``stirfried-client`` package (``js/``), bundled with socket.io-client
into ``static/vendor/stirfried-client`` (``npm run bundle`` in ``js/``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from stirfried.config import Config

STATIC_DIRECTORY = Path(__file__).parent / "static"


def render_index(config: Config) -> str:
    """The page, told which Socket.IO serializer the gateway speaks."""
    serializer = config.socketio.get("serializer", "default")
    template = (STATIC_DIRECTORY / "index.html").read_text(encoding="utf-8")
    return template.replace("{{serializer}}", serializer)


def example_page_routes(config: Config) -> list[web.AbstractRouteDef]:
    """``GET /`` and ``/static/...``; the page is rendered on the first request, in a thread."""
    rendered: list[str] = []

    async def show_index(request: web.Request) -> web.Response:
        if not rendered:
            rendered.append(await asyncio.to_thread(render_index, config))
        return web.Response(text=rendered[0], content_type="text/html")

    return [web.get("/", show_index), web.static("/static", STATIC_DIRECTORY)]
