"""Subscription tokens: proof that a client scheduled a task, valid on every gateway.

A task id is not a secret (it shows up in logs, URLs and other clients'
rooms), so following a task's events takes a token: an HMAC-SHA256 of the
task id under ``stirfried_token_secret``. The gateway hands it out with the
task id when it schedules the task; any gateway with the same secret can check
it, and nothing needs storing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets

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
