"""Who may follow, read and revoke which task.

Following a task (``subscribe_task``, the SSE stream) takes one of: its
subscription token (handed to whoever scheduled it), a client token whose
``follow`` claim names the task id, or one whose ``follow_tags`` share a tag
with the task. Reading and revoking are open to all on an anonymous gateway
(as in Stirfried 0.7.0) and take the same proof when tokens are required.

A subscription token is an HMAC-SHA256 of the task id under
``stirfried_token_secret``: a task id is not a secret (it shows up in logs,
URLs and other clients' rooms), the gateway hands the token out with the id,
and any gateway with the same secret can check it without storing anything.

Tags live in Redis next to the task's event log (:func:`stirfried.protocol.tags_key`,
kept as long as the log), written by :mod:`task_records` when a token holder
schedules the task.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from typing import Any

import redis.asyncio

from stirfried import protocol
from stirfried.server.caller import Authenticator, Principal
from stirfried.server.errors import NotPermitted

logger = logging.getLogger(__name__)

# Domain separation: this key signs nothing but subscription tokens.
_PURPOSE = b"stirfried subscription token\x00"


class SubscriptionTokens:
    """Issues and checks subscription tokens under one secret."""

    def __init__(self, secret: str) -> None:
        if not secret:
            logger.warning(
                "neither stirfried_token_secret nor stirfried_auth_secret is set: subscription "
                "tokens are valid only on this gateway process and only until it restarts"
            )
            secret = secrets.token_urlsafe(32)
        self._key = secret.encode()

    def issue(self, task_id: str) -> str:
        """The token that lets its holder follow ``task_id``."""
        digest = hmac.new(self._key, _PURPOSE + task_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, task_id: str, token: object) -> bool:
        """Whether ``token`` was issued for ``task_id`` (constant-time comparison)."""
        return isinstance(token, str) and hmac.compare_digest(
            token.encode("utf-8", "replace"), self.issue(task_id).encode()
        )


def subscription_tokens(token_secret: str, auth_secret: str) -> SubscriptionTokens:
    """The fleet's subscription tokens: under ``stirfried_token_secret``, else derived from
    ``stirfried_auth_secret`` (the HMAC input is domain-separated from JWTs), so a fleet
    that shares its auth secret shares subscription tokens too."""
    return SubscriptionTokens(token_secret or auth_secret)


class TaskAccess:
    """Checks a caller's right to a task, and records the tags that grant it."""

    def __init__(
        self,
        authenticator: Authenticator,
        tokens: SubscriptionTokens,
        client: redis.asyncio.Redis | None,
    ) -> None:
        self._authenticator = authenticator
        self._tokens = tokens
        self._redis = client

    def issue_token(self, task_id: str) -> str:
        """The subscription token handed out with a newly scheduled task's id."""
        return self._tokens.issue(task_id)

    async def check_follow(self, principal: Principal, task_id: str, token: Any) -> None:
        principal.check_current()
        if self._tokens.verify(task_id, token) or principal.may_follow(task_id):
            return
        if principal.follow_tags and self._redis is not None:
            try:
                tags = await self._redis.smembers(protocol.tags_key(task_id))
            except (redis.RedisError, OSError) as error:
                logger.warning("could not read the tags of task %s: %s", task_id, error)
                tags = set()
            if {tag.decode() if isinstance(tag, bytes) else tag for tag in tags} & principal.follow_tags:
                return
        raise NotPermitted("a valid subscription token for this task is required")

    async def check_task_access(self, principal: Principal, task_id: str, token: Any) -> None:
        principal.check_current()
        if not self._authenticator.anonymous:
            await self.check_follow(principal, task_id, token)
