"""Engine.IO sessions, bounded: how many an address opens, how long they wait for a
CONNECT, what a polling POST may carry, and what a request on a closed session gets.

``stirfried_max_connections_per_ip`` counts Socket.IO clients (their CONNECT)
and SSE streams. An Engine.IO session exists before that: a client can open
thousands of them (websocket or polling) and never send CONNECT, each holding a
socket and memory. So

- a session that has not sent CONNECT within ``CONNECT_DEADLINE`` seconds is closed;
- a new session (an Engine.IO handshake: a ``/socket.io/`` request without
  ``sid``) from an address that already holds twice as many sessions as the limit
  is refused with 429. Twice: a client over the limit still reaches its CONNECT and
  gets the Socket.IO refusal naming the reason, which browsers show (an HTTP 429 at
  the handshake they report only as a transport error).

A polling POST over Engine.IO's buffer size gets a 413 (python-engineio dropped it
without an answer), and a request on a session that is closing a 400 (it raised KeyError).

Sessions are counted by a sweep each second (python-socketio keeps each session's
WSGI-style environ in ``AsyncServer.environ``, pinned by
``tests/unit/test_socketio_contract.py``), plus the handshakes since the last sweep.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web
from aiohttp.typedefs import Middleware

from stirfried.server.caller import Callers
from stirfried.server.errors import InvalidRequest, RateLimited, TooLarge, http_reply

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONNECT_DEADLINE = 5.0
SWEEP_INTERVAL = 1.0
SOCKETIO_PATH = "/socket.io"


class SessionGuard:
    """Caps Engine.IO sessions per address and closes those that never CONNECT."""

    def __init__(self, sio: socketio.AsyncServer, callers: Callers, connections_per_address: int) -> None:
        self._sio = sio
        self._callers = callers
        self._limit = 2 * connections_per_address
        self._sessions: collections.Counter[str] = collections.Counter()
        self._handshakes: collections.Counter[str] = collections.Counter()
        self._first_seen: dict[str, float] = {}

    def middleware(self) -> Middleware:
        """Answers what python-engineio would not: an Engine.IO handshake from an address at its
        limit (429), an oversized polling POST (413), a request on a closed session (400)."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.path.startswith(SOCKETIO_PATH):
                return await handler(request)
            # python-engineio drops a polling POST over its buffer size without answering.
            limit = self._sio.eio.max_http_buffer_size
            if request.method == "POST" and (request.content_length or 0) > limit:
                return http_reply(TooLarge(f"a Socket.IO message is larger than {limit} bytes"))
            if self._limit and "sid" not in request.query:
                address = self._callers.address_of(request)
                if self._sessions[address] + self._handshakes[address] >= self._limit:
                    self._recount()  # exact at the boundary: sessions may have closed since the sweep
                    if self._sessions[address] >= self._limit:
                        return http_reply(RateLimited("too many connections from this address"))
                self._handshakes[address] += 1
            try:
                return await handler(request)
            except KeyError as error:  # python-engineio, for a session that is closing or closed
                raise InvalidRequest(f"the Socket.IO session is closed ({error})") from error

        return guard

    async def run(self) -> None:
        """Sweep every SWEEP_INTERVAL seconds until cancelled."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            await self.sweep()

    def _recount(self) -> None:
        sessions: collections.Counter[str] = collections.Counter()
        for environ in self._sio.environ.values():
            request = environ.get("aiohttp.request") if isinstance(environ, dict) else None
            if request is not None:
                sessions[self._callers.address_of(request)] += 1
        self._sessions, self._handshakes = sessions, collections.Counter()

    async def sweep(self, now: float | None = None) -> None:
        """Recount sessions per address; close those past the CONNECT deadline."""
        now = time.monotonic() if now is None else now
        late = []
        for eio_sid in list(self._sio.environ):
            first_seen = self._first_seen.setdefault(eio_sid, now)
            if (
                now - first_seen > CONNECT_DEADLINE
                and self._sio.manager.sid_from_eio_sid(eio_sid, "/") is None
            ):
                late.append(eio_sid)
        for eio_sid in set(self._first_seen) - set(self._sio.environ):
            del self._first_seen[eio_sid]
        self._recount()
        for eio_sid in late:
            socket = self._sio.eio.sockets.get(eio_sid)
            if socket is not None:
                with contextlib.suppress(Exception):  # already closing
                    await drop_transport(self._sio.eio, socket)
        if late:
            logger.info(
                "closed %d Engine.IO sessions that did not CONNECT within %g s", len(late), CONNECT_DEADLINE
            )


async def drop_transport(engine: Any, socket: Any) -> None:
    """Close one Engine.IO connection as a lost network would: its client reconnects."""
    await socket.close(wait=False, abort=True, reason=engine.reason.SERVER_DISCONNECT)
    # None ends Engine.IO's websocket writer, which then closes the
    # websocket instead of waiting for the client to.
    socket.queue.put_nowait(None)
