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
  than a reverse proxy's (nginx's and AWS load balancers' are 60 s).

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
from stirfried.server.errors import Refusal, Refused, RequestTimeout, http_reply
from stirfried.server.logs import one_line

logger = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 75.0
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

    def __init__(self, manager: web.Server, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", KEEPALIVE_TIMEOUT)
        super().__init__(manager, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_started = False  # some bytes of the awaited request's head arrived
        self._body: StreamReader | None = None  # the body of the latest request parsed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_deadline()
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
    body = replies.dumps(replies.failed(refusal.message)).encode()
    head = (
        f"HTTP/1.1 {refusal.status} {HTTPStatus(refusal.status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class GatewayServer(web.Server):
    """aiohttp's low-level server, serving each connection with a :class:`GatewayConnection`."""

    @classmethod
    def like(cls, server: web.Server) -> GatewayServer:
        """The same server (the application's handler, request factory and handler options)."""
        return cls(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **server._kwargs,
        )

    def __call__(self) -> RequestHandler:
        return GatewayConnection(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`GatewayServer`; what ``stirfried-server``
    and the tests' gateways run the application with."""

    async def _make_server(self) -> web.Server:
        # aiohttp's runs the application's start-up and builds its server.
        return GatewayServer.like(await super()._make_server())
