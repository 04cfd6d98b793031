"""Each HTTP connection, before any route or middleware sees a request on it.

aiohttp answers what its HTTP parser refuses (a malformed request line or header,
invalid chunked encoding, a line over 8190 bytes) in its protocol handler,
``aiohttp.web_protocol.RequestHandler.handle_error``: in text/plain, past every
middleware, logged as an ERROR with a traceback (aio-libs/aiohttp#3287 asks for a
hook; there is none). It bounds a request's headers only by the keep-alive timeout
(3630 s by default), so a client that trickles them holds a socket for an hour. So
the gateway serves every connection with a subclass of that handler:

- what the parser refuses is answered like every other refusal,
  ``{"status": "failed", "data": message}`` as JSON: 400, or 431 for a line over the
  limit; the log gets one brief warning (``logs.ClientMistakes``);
- a parse error in the middle of a request's body (invalid chunked encoding) fails
  the route's read of that body, which answers 400: aiohttp's C parser drops such a
  body without ending it, and the route waited for it until the client left;
- a request's head must arrive within ``HEADER_TIMEOUT`` seconds: counted from the
  connection's start for its first request, from the first byte for later ones. A
  client that trickles its head gets a 408 and is disconnected; a connection that
  sends nothing is closed;
- an idle keep-alive connection is closed after ``KEEPALIVE_TIMEOUT`` seconds, longer
  than a reverse proxy's (nginx's and AWS load balancers' are 60 s);
- one address holds at most ``TCP_CONNECTIONS_PER_CLIENT`` times
  ``stirfried_max_connections_per_ip`` TCP connections (a Socket.IO client polling holds
  two, a browser keeps a few more alive for its HTTP calls); a connection beyond that gets
  a 429 and is closed before anything is read from it. Trusted proxies carry many
  clients' connections and are not capped; the addresses behind them are, by the
  Socket.IO and SSE limits.

aiohttp has no option to choose the handler class (``web.Server`` makes a
``RequestHandler``), so :class:`GatewayServer` makes ours and :class:`GatewayRunner`
serves the application through it: ``stirfried-server`` and the tests' gateways use it.
The handler internals this relies on are pinned by ``tests/unit/test_aiohttp_contract.py``;
setup.cfg bounds aiohttp's version.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from stirfried.server import replies
from stirfried.server.app_keys import CONFIG
from stirfried.server.errors import RateLimited, Refusal, Refused, RequestTimeout, http_reply
from stirfried.server.limits import ConnectionCounter
from stirfried.server.logs import one_line

logger = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 75.0
TCP_CONNECTIONS_PER_CLIENT = 4
# A parser message quotes the offending line; the reply names the problem, not all of it.
MAX_DESCRIPTION = 300


def describe(error: HttpProcessingError) -> Refusal:
    """The refusal of what aiohttp's parser raised, its message on one line."""
    if isinstance(error, LineTooLong):
        limit = error.args[1] if len(error.args) > 1 else "the limit of"
        return Refused(431, f"a line of the request's head is longer than {limit} bytes")
    text = one_line(error.message or str(error))
    return Refused(400, f"malformed HTTP request: {text[:MAX_DESCRIPTION]}")


class GatewayConnection(RequestHandler):
    """aiohttp's handler of one connection, with the gateway's answers and deadlines."""

    def __init__(self, manager: web.Server, sockets: SocketsPerAddress | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", KEEPALIVE_TIMEOUT)
        super().__init__(manager, **kwargs)
        self._sockets = sockets
        self._peer: str | None = None  # counted in ``sockets`` while the connection is open
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_started = False  # some bytes of the awaited request's head arrived
        self._body: StreamReader | None = None  # the body of the latest request parsed
        # Done once the client's connection is gone (see connection_closed)
        self.closed: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else None
        if self._sockets is not None and address is not None:
            if not self._sockets.open(address):
                assert self.transport is not None  # set by RequestHandler.connection_made
                self.transport.write(raw_reply(RateLimited("too many connections from this address")))
                self.force_close()
                return
            self._peer = address
        self._start_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._stop_head_deadline()
        if self._sockets is not None and self._peer is not None:
            self._sockets.close(self._peer)
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        idle = self._waiter is not None  # waiting for a request: these bytes start one
        requests, queued = self._request_count, len(self._messages)
        super().data_received(data)
        if self._request_count != requests:
            self._stop_head_deadline()  # a whole head arrived (or the parser refused it)
            self._head_started = False
        elif data and (idle or self._head_deadline is not None):
            self._head_started = True
            if self._head_deadline is None:
                self._start_head_deadline()
        for message, payload in itertools.islice(self._messages, queued, None):
            if isinstance(message, RawRequestMessage):
                self._body = payload
            elif self._body is not None and not self._body.is_eof():
                self._fail_body(self._body, message.exc)

    def _fail_body(self, body: StreamReader, error: BaseException) -> None:
        """The parser failed inside the latest request's body: end that body with the error,
        so the route reading it answers, and close the connection after that answer."""
        message = one_line(error.message) if isinstance(error, HttpProcessingError) else str(error)
        body.set_exception(RequestPayloadError(message))
        body.feed_eof()
        self.close()  # the queued parser error is then never answered: the route's reply is

    def _start_head_deadline(self) -> None:
        self._head_deadline = self._loop.call_later(HEADER_TIMEOUT, self._head_late, self._request_count)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self, requests: int) -> None:
        self._head_deadline = None
        if self.transport is None or self._request_count != requests or self._waiter is None:
            return  # closed, a request arrived, or one is being answered
        if self._head_started:
            refusal = RequestTimeout(f"the request's headers did not arrive within {HEADER_TIMEOUT:g} s")
            self.transport.write(raw_reply(refusal))
        logger.debug("closed a connection whose request head did not arrive in %g s", HEADER_TIMEOUT)
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer as every refusal is answered. aiohttp's own handling runs first: it logs
        (a parser error as the client's mistake, through logs.ClientMistakes) and refuses
        to answer twice."""
        super().handle_error(request, status, exc, message)
        if isinstance(exc, HttpProcessingError):
            refusal = describe(exc)
        else:
            refusal = Refused(status, HTTPStatus(status).phrase.lower())
        response = http_reply(refusal)
        response.force_close()
        return response


def raw_reply(refusal: Refusal) -> bytes:
    """A refusal as a whole HTTP/1.1 response that closes the connection, for when there
    is no request to answer through aiohttp."""
    body = replies.http_body(replies.failed(refusal.message)).encode()
    head = (
        f"HTTP/1.1 {refusal.status} {HTTPStatus(refusal.status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class SocketsPerAddress:
    """Open TCP connections per peer address, capped; trusted proxies are not counted."""

    def __init__(self, limit: int, trusted: frozenset[str]) -> None:
        self._counter = ConnectionCounter(limit)
        self._trusted = trusted

    def open(self, address: str) -> bool:
        """Count a new connection from ``address``; False (and not counted) over the limit."""
        return address in self._trusted or self._counter.open(address)

    def close(self, address: str) -> None:
        if address not in self._trusted:
            self._counter.close(address)


def connection_closed(request: web.BaseRequest) -> asyncio.Future[None] | None:
    """A future done once the client of ``request`` has gone (None when the request did
    not come through :class:`GatewayConnection`).

    aiohttp tells a handler nothing when its client leaves (unless it cancels every
    handler, ``handler_cancellation``): a stream that waits for events would learn it only
    at its next write, and hold its follow and its connection slot until then.
    """
    protocol = request.protocol
    return protocol.closed if isinstance(protocol, GatewayConnection) else None


class GatewayServer(web.Server):
    """aiohttp's low-level server, serving each connection with a :class:`GatewayConnection`."""

    def __init__(self, *args: Any, sockets: SocketsPerAddress | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sockets = sockets

    @classmethod
    def like(cls, server: web.Server, sockets: SocketsPerAddress | None = None) -> GatewayServer:
        """The same server (the application's handler, request factory and handler options)."""
        return cls(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            sockets=sockets,
            **server._kwargs,
        )

    def __call__(self) -> RequestHandler:
        return GatewayConnection(self, sockets=self.sockets, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`GatewayServer`; what ``stirfried-server``
    and the tests' gateways run the application with."""

    async def _make_server(self) -> web.Server:
        # aiohttp's runs the application's start-up and builds its server.
        server = await super()._make_server()
        settings = self.app[CONFIG].stirfried
        sockets = None
        if settings.max_connections_per_ip:
            limit = TCP_CONNECTIONS_PER_CLIENT * settings.max_connections_per_ip
            sockets = SocketsPerAddress(limit, frozenset(settings.trusted_proxies))
        return GatewayServer.like(server, sockets)
