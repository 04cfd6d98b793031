"""A gateway's refusal reaches ``stirfried.client`` users with its reason, not just "failed to connect"."""

from __future__ import annotations

import asyncio
import threading

import pytest

from stirfried.client import StirfriedClient, StirfriedError, SyncStirfriedClient
from stirfried.server.caller import Authenticator

SECRET = "refusal-test-secret-0123456789abcdef"
SECURE = {"stirfried_anonymous": False, "stirfried_auth_secret": SECRET}
REFUSALS = [("garbage", "invalid token: Not enough segments"), (None, "a token is required")]


@pytest.mark.parametrize(("token", "reason"), REFUSALS)
async def test_the_async_client_names_the_gateways_reason(start_gateway, token, reason):
    url = str((await start_gateway(**SECURE)).make_url("/"))

    with pytest.raises(StirfriedError) as caught:
        async with StirfriedClient(url, token=token, timeout=10):
            pass

    assert str(caught.value).startswith(f"cannot connect to {url}: {reason}"), caught.value


@pytest.mark.parametrize(("token", "reason"), REFUSALS)
async def test_the_sync_client_names_the_gateways_reason(start_gateway, token, reason):
    url = str((await start_gateway(**SECURE)).make_url("/"))

    def script() -> str:
        try:
            with SyncStirfriedClient(url, token=token, timeout=10):
                return "connected"
        except StirfriedError as error:
            return str(error)

    assert (await asyncio.to_thread(script)).startswith(f"cannot connect to {url}: {reason}")
    # The refused client's loop thread is gone with it (it was left running before).
    assert "stirfried-client" not in [thread.name for thread in threading.enumerate()]


async def test_a_valid_token_still_connects(start_gateway):
    url = str((await start_gateway(**SECURE)).make_url("/"))
    token = Authenticator(SECRET, anonymous=False).mint("alice", ["add"])

    async with StirfriedClient(url, token=token, timeout=15) as client:
        assert await client.run("add", 2, 3) == 5
