"""The aiohttp internals ``server/http_connections.py`` builds on; setup.cfg bounds aiohttp's
version, and a new version must pass these before the bound moves."""

from __future__ import annotations

import inspect

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from stirfried.server.http_connections import KEEPALIVE_TIMEOUT, GatewayConnection, GatewayServer


def test_the_connection_handler_keeps_the_state_the_gateway_reads():
    slots = {name for cls in RequestHandler.__mro__ for name in getattr(cls, "__slots__", ())}

    # _waiter: set while the handler waits for a request; _messages: the parsed requests
    # (or parser errors) it has not taken yet; _request_count: how many were parsed.
    assert {"_waiter", "_messages", "_request_count", "_loop", "transport"} <= slots
    assert list(inspect.signature(RequestHandler.handle_error).parameters) == [
        "self", "request", "status", "exc", "message",
    ]  # fmt: skip
    assert {"status", "exc", "message"} <= {field.name for field in _ErrInfo.__attrs_attrs__}


async def test_the_gateway_server_makes_gateway_connections_with_the_applications_options():
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    made = web.Server(handler, handler_cancellation=True, max_line_size=100)
    server = GatewayServer.like(made)
    connection = server()

    assert isinstance(connection, GatewayConnection)
    assert server.request_handler is handler and server.handler_cancellation
    assert connection.max_line_size == 100 and connection.keepalive_timeout == KEEPALIVE_TIMEOUT
    assert GatewayServer.like(web.Server(handler, keepalive_timeout=5))().keepalive_timeout == 5
