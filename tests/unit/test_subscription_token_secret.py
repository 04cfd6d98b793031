"""Subscription tokens work across a fleet that shares only its auth secret."""

from __future__ import annotations

from stirfried.config import translate
from stirfried.server.task_access import subscription_tokens

AUTH_SECRET = "a client-token secret of at least thirty-two bytes"


def tokens_of(**settings: object):
    config = translate({"broker_url": "redis://127.0.0.1:1/0", **settings}, environ={})
    return subscription_tokens(config.stirfried.token_secret, config.stirfried.auth_secret)


def test_gateways_sharing_the_auth_secret_accept_each_others_subscription_tokens():
    gateway_a = tokens_of(stirfried_auth_secret=AUTH_SECRET)
    gateway_b = tokens_of(stirfried_auth_secret=AUTH_SECRET)

    assert gateway_b.verify("task-1", gateway_a.issue("task-1"))
    assert not gateway_b.verify("task-2", gateway_a.issue("task-1"))


def test_a_token_secret_of_its_own_wins_and_without_any_secret_tokens_stay_local():
    own = tokens_of(stirfried_auth_secret=AUTH_SECRET, stirfried_token_secret="fleet token secret")
    derived = tokens_of(stirfried_auth_secret=AUTH_SECRET)
    assert not derived.verify("task-1", own.issue("task-1"))

    first = tokens_of(stirfried_anonymous=True)
    second = tokens_of(stirfried_anonymous=True)
    assert first.verify("task-1", first.issue("task-1"))
    assert not second.verify("task-1", first.issue("task-1"))
