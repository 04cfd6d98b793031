"""Who is asking: one :class:`Caller` per HTTP request or Socket.IO connection.

A caller is built once, at the edge, from what the client sent: its token (an
HS256 JWT, see below), its address (the peer's, or behind trusted proxies the
one they name) and the request headers that ``stirfried_header_task_map``
turns into task arguments. Everything after the edge trusts it.

A token is an HS256 JSON Web Token signed with ``stirfried_auth_secret``
(PyJWT; the algorithm is pinned, so ``alg: none`` or an RS/HS confusion is
refused). Claims:

- ``sub`` (required): the subject, e.g. a user id; logged, used as the rate-limit
  key, and put in ``stirfried_subject_kwarg`` of every task it schedules;
- ``exp`` (required): expiry, checked on every request, not only at connect;
- ``tasks``: task names the holder may schedule (``["*"]``: any the gateway allows;
  absent: none, a follow-only token);
- ``follow``: task ids the holder may follow, read and revoke without their
  subscription token (absent: none);
- ``tags``: tags put on every task the holder schedules (besides ``subject:<sub>``);
- ``follow_tags``: the holder may follow, read and revoke every task carrying one of
  these tags, e.g. ``["subject:alice"]`` for a support tool watching Alice's tasks;
  "my tasks" lists them too;
- ``options``: the scheduling options (``countdown``, ``eta``, ``expires``, ``priority``,
  ``queue``) the holder may set, where ``stirfried_task_options`` allows them (absent: none);
- ``terminate``: true lets the holder terminate running tasks it may revoke, where
  ``stirfried_terminate`` allows it.

Anonymous Socket.IO clients may present a session key (``auth: {"session": ...}``,
random, 22 to 128 URL-safe characters): the tasks they schedule are listed
("my tasks") to whoever presents the same key later, e.g. the same browser tab
after a reload. Without one, a connection lists only its own tasks.

Web backends mint these for their users (``stirfried-token`` does it for development).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from aiohttp import web

from stirfried.server.errors import NotAuthenticated

ALGORITHM = "HS256"
ANY_TASK = "*"
SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{22,128}")


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is asking: a token's claims, or the anonymous client."""

    subject: str | None = None
    """None for an anonymous client."""
    tasks: frozenset[str] | None = None
    """Task names it may schedule; None: any the gateway allows (anonymous clients)."""
    follow: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    """Tags for the tasks it schedules (``subject:<sub>`` included)."""
    follow_tags: frozenset[str] = frozenset()
    expires: float | None = None
    options: frozenset[str] | None = None
    """Scheduling options it may set; None: any the gateway allows (anonymous clients)."""
    terminate: bool | None = None
    """Whether it may terminate running tasks; None: if the gateway allows (anonymous clients)."""

    def check_current(self) -> None:
        """Raise NotAuthenticated once the token has expired (long-lived connections too)."""
        if self.expires is not None and time.time() >= self.expires:
            raise NotAuthenticated("the token has expired")

    def may_schedule(self, task_name: str) -> bool:
        return self.tasks is None or ANY_TASK in self.tasks or task_name in self.tasks

    def may_follow(self, task_id: str) -> bool:
        return task_id in self.follow

    def may_set(self, option: str) -> bool:
        return self.options is None or option in self.options

    def may_terminate(self) -> bool:
        return self.terminate is None or self.terminate


ANONYMOUS = Principal()


class Authenticator:
    """Turns a bearer token (or its absence) into a Principal."""

    def __init__(self, secret: str, anonymous: bool) -> None:
        self._secret = secret
        self._anonymous = anonymous

    @property
    def anonymous(self) -> bool:
        """Whether clients without a token are served (``stirfried_anonymous``)."""
        return self._anonymous

    @property
    def enabled(self) -> bool:
        """Whether tokens can be checked at all (a secret is configured)."""
        return bool(self._secret)

    def authenticate(self, token: Any) -> Principal:
        """The principal of ``token``; without one, anonymous if allowed. Raises NotAuthenticated."""
        if token is None or token == "":
            if self._anonymous:
                return ANONYMOUS
            raise NotAuthenticated("a token is required (Authorization: Bearer <token>, or Socket.IO auth)")
        if not isinstance(token, str):
            raise NotAuthenticated("the token must be a string")
        if not self._secret:
            raise NotAuthenticated("this gateway accepts no tokens (no stirfried_auth_secret)")
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
            )
        except jwt.ExpiredSignatureError as error:
            raise NotAuthenticated("the token has expired") from error
        except jwt.InvalidTokenError as error:
            raise NotAuthenticated(f"invalid token: {error}") from error
        subject = str(claims["sub"])
        return Principal(
            subject=subject,
            tasks=_names(claims.get("tasks", []), "tasks"),
            follow=_names(claims.get("follow", []), "follow"),
            tags=_names(claims.get("tags", []), "tags") | {f"subject:{subject}"},
            follow_tags=_names(claims.get("follow_tags", []), "follow_tags"),
            expires=float(claims["exp"]),
            options=_names(claims.get("options", []), "options"),
            terminate=_flag(claims.get("terminate", False), "terminate"),
        )

    def mint(
        self,
        subject: str,
        tasks: Iterable[str] = (),
        follow: Iterable[str] = (),
        ttl: float = 3600,
        tags: Iterable[str] = (),
        follow_tags: Iterable[str] = (),
        options: Iterable[str] = (),
        terminate: bool = False,
    ) -> str:
        """A signed token (for development and tests; production backends mint their own)."""
        if not self._secret:
            raise ValueError("stirfried_auth_secret is not set")
        now = int(time.time())
        claims = {
            "sub": subject,
            "iat": now,
            "exp": now + int(ttl),
            "tasks": list(tasks),
            "follow": list(follow),
            "tags": list(tags),
            "follow_tags": list(follow_tags),
            "options": list(options),
            "terminate": terminate,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)


def _names(value: Any, claim: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise NotAuthenticated(f"invalid token: claim '{claim}' must be a list of strings")
    return frozenset(value)


def _flag(value: Any, claim: str) -> bool:
    if not isinstance(value, bool):
        raise NotAuthenticated(f"invalid token: claim '{claim}' must be true or false")
    return value


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def client_address(remote: str | None, forwarded_for: str | None, trusted: frozenset[str]) -> str:
    """The client's address: the peer's, or behind trusted proxies the last untrusted hop
    of ``X-Forwarded-For`` (earlier hops are the client's to make up)."""
    address = remote or "unknown"
    if address in trusted and forwarded_for:
        for hop in reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()]):
            address = hop
            if hop not in trusted:
                break
    return address


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who sent a request or holds a connection."""

    principal: Principal
    address: str
    """The client's address (for rate and connection limits and logs)."""
    label: str
    """How logs name the client: its address over HTTP, its sid over Socket.IO."""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The header values ``stirfried_header_task_map`` needs, keyed by lower-case name."""
    session: str | None = None
    """An anonymous Socket.IO client's session tag (``session:<digest of its key>``, or
    ``sid:<sid>`` without a key): "my tasks" lists the tasks scheduled under it."""

    @property
    def owner_tags(self) -> frozenset[str]:
        """The tags its tasks are listed under: the token's tags (``subject:<sub>`` first among
        them), or the anonymous session's."""
        if self.principal.subject is not None:
            return self.principal.tags
        return frozenset({self.session}) if self.session else frozenset()

    @property
    def listing_tags(self) -> frozenset[str]:
        """The tags whose tasks "my tasks" shows it: its subject's and its ``follow_tags``."""
        if self.principal.subject is not None:
            return frozenset({f"subject:{self.principal.subject}"}) | self.principal.follow_tags
        return self.owner_tags

    @property
    def rate_key(self) -> str:
        """Whose budget a request spends: the token's subject, else the address (a new
        connection or request must not mean a new bucket)."""
        return self.principal.subject or f"address:{self.address}"


class Callers:
    """Builds the :class:`Caller` of a request or connection."""

    def __init__(
        self,
        authenticator: Authenticator,
        trusted_proxies: Iterable[str],
        header_task_map: Mapping[str, Mapping[str, str]],
    ) -> None:
        self._authenticator = authenticator
        self._trusted = frozenset(trusted_proxies)
        self._mapped = frozenset(header.lower() for mapping in header_task_map.values() for header in mapping)

    @property
    def authenticator(self) -> Authenticator:
        return self._authenticator

    def of_request(self, request: web.Request, token: str | None = None) -> Caller:
        """The caller of an HTTP request; the token comes from ``Authorization: Bearer``
        unless given. Raises NotAuthenticated (401)."""
        if token is None:
            token = bearer_token(request.headers.get("Authorization"))
        address = self.address_of(request)
        principal = self._authenticator.authenticate(token)
        return Caller(principal, address, address, self.mapped_headers(request.headers))

    def of_connection(self, sid: str, request: web.Request | None, auth: Any) -> Caller:
        """The caller of a Socket.IO connection: the token of the ``auth`` payload (or the
        handshake's Authorization header). Raises NotAuthenticated."""
        headers: Mapping[str, str] = request.headers if request is not None else {}
        token = auth.get("token") if isinstance(auth, Mapping) else None
        if token is None:
            token = bearer_token(headers.get("Authorization"))
        address = self.address_of(request) if request is not None else "unknown"
        principal = self._authenticator.authenticate(token)
        session = None
        if principal.subject is None:
            session = _session_tag(auth.get("session") if isinstance(auth, Mapping) else None, sid)
        return Caller(principal, address, sid, self.mapped_headers(headers), session)

    def address_of(self, request: web.Request) -> str:
        """The client address of an aiohttp request (see :func:`client_address`)."""
        return client_address(request.remote, request.headers.get("X-Forwarded-For"), self._trusted)

    def mapped_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The header values any task's header map needs, keyed by lower-case name: a plain
        dict (aiohttp's are case-insensitive multidicts), small enough for a session."""
        if not self._mapped:
            return {}
        lowered = {name.lower(): value for name, value in headers.items()}
        return {name: lowered[name] for name in self._mapped if name in lowered}


def _session_tag(key: Any, sid: str) -> str:
    """The session tag of an anonymous connection: from its session key, else its sid.
    Only a digest of the key is kept (it is the client's secret)."""
    if key is None:
        return f"sid:{sid}"
    if not isinstance(key, str) or not SESSION_KEY.fullmatch(key):
        raise NotAuthenticated("auth 'session' must be 22 to 128 characters of A-Z, a-z, 0-9, '_' and '-'")
    return "session:" + hashlib.sha256(key.encode()).hexdigest()[:32]
