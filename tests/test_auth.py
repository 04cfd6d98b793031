"""Client tokens against a real gateway and workers: who may schedule, follow, read and revoke."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import jwt
import pytest
import socketio

from stirfried import protocol
from stirfried.config import translate
from stirfried.server.app import create_app
from stirfried.server.caller import Authenticator
from stirfried.settings import ConfigError
from tests import services
from tests.helpers import post_task, url_of

SECRET = "the-test-fleet-shares-this-32-byte-secret"
SECURE = {"stirfried_anonymous": False, "stirfried_auth_secret": SECRET}
MINT = Authenticator(SECRET, anonymous=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_gateway_without_tokens_or_anonymous_access_refuses_to_start(base_config):
    config = {**base_config, "stirfried_anonymous": False}
    with pytest.raises(ConfigError, match=r"stirfried_auth_secret.*stirfried_anonymous"):
        create_app(translate(config, environ={}))
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        create_app(translate({**config, "stirfried_auth_secret": "short"}, environ={}))


async def test_http_needs_a_valid_token(start_gateway, http):
    gateway = await start_gateway(**SECURE)
    task = {"task_name": "add", "args": [1, 2]}
    forged = jwt.encode({"sub": "eve", "exp": time.time() + 60, "tasks": ["*"]}, "x" * 40, algorithm="HS256")
    unsigned = jwt.encode({"sub": "eve", "exp": time.time() + 60, "tasks": ["*"]}, None, algorithm="none")
    cases = [
        ({}, "token is required"),
        ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "Bearer"),
        (bearer("not-a-jwt"), "invalid token"),
        (bearer(forged), "invalid token"),
        (bearer(unsigned), "invalid token"),
        (bearer(MINT.mint("alice", ["*"], ttl=-10)), "expired"),
    ]
    for headers, message in cases:
        status, body = await post_task(http, gateway, task, headers=headers)
        assert status == 401 and message in body["data"], (headers, body)

    status, body = await post_task(http, gateway, task, headers=bearer(MINT.mint("alice", ["add"])))
    assert status == 201 and body["status"] == "success", body


async def test_a_token_schedules_only_its_tasks(start_gateway, http):
    gateway = await start_gateway(**SECURE)
    token = MINT.mint("alice", ["add"])

    status, _ = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]}, headers=bearer(token))
    assert status == 201
    for task in (
        {"task_name": "fail"},
        {"task_name": "add", "args": [1, 2], "chain": [{"task_name": "fail"}]},
    ):
        status, body = await post_task(http, gateway, task, headers=bearer(token))
        assert status == 403 and "does not allow task 'fail'" in body["data"]
    status, body = await post_task(http, gateway, {"task_name": "add"}, headers=bearer(MINT.mint("bob")))
    assert status == 403  # a follow-only token schedules nothing


async def test_reading_and_revoking_need_the_right_to_follow(start_gateway, http):
    gateway = await start_gateway(**SECURE)
    alice, mallory = MINT.mint("alice", ["add"]), MINT.mint("mallory", ["add"])
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]}, headers=bearer(alice))
    task_id, task_token = body["data"], body["token"]

    async with http.get(url_of(gateway, f"/task/{task_id}"), headers=bearer(mallory)) as response:
        assert response.status == 403
    async with http.delete(url_of(gateway, f"/task/{task_id}"), headers=bearer(mallory)) as response:
        assert response.status == 403
    follower = MINT.mint("support", follow=[task_id])
    for headers, query in ((bearer(alice), f"?token={task_token}"), (bearer(follower), "")):
        deadline = time.monotonic() + 20
        while True:
            async with http.get(url_of(gateway, f"/task/{task_id}{query}"), headers=headers) as response:
                assert response.status == 200
                info = await response.json()
            if info["state"] == "SUCCESS" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert info["result"] == 3


async def test_socketio_connections_authenticate_with_the_auth_payload(start_gateway, connect):
    gateway = await start_gateway(**SECURE)
    url = str(gateway.make_url("/"))

    for auth, message in ((None, "token is required"), ({"token": "garbage"}, "invalid token")):
        client = socketio.AsyncClient(reconnection=False)
        refusals: list[dict[str, Any]] = []
        client.on("connect_error", refusals.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
        assert message in refusals[0]["message"], refusals

    client = socketio.AsyncClient(reconnection=False)
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def finished(payload: dict[str, Any]) -> None:
        if not done.done():
            done.set_result(payload)

    client.on(protocol.ON_SUCCESS, finished)
    await client.connect(url, auth={"token": MINT.mint("alice", ["add"])}, transports=["websocket"])
    try:
        reply = await client.call("send_task", {"task_name": "add", "args": [2, 2]}, timeout=15)
        assert reply["status"] == "success"
        assert (await asyncio.wait_for(done, 20))["retval"] == 4
        refused = await client.call("send_task", {"task_name": "fail"}, timeout=15)
        assert refused == {"status": "failed", "data": "the token does not allow task 'fail'"}
    finally:
        await client.disconnect()


async def test_an_expired_token_stops_working_on_an_open_connection(start_gateway):
    gateway = await start_gateway(**SECURE)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        str(gateway.make_url("/")),
        auth={"token": MINT.mint("alice", ["add"], ttl=2)},
        transports=["websocket"],
    )
    try:
        assert (await client.call("send_task", {"task_name": "add", "args": [1, 1]}, timeout=15))[
            "status"
        ] == "success"
        await asyncio.sleep(2.5)
        reply = await client.call("send_task", {"task_name": "add", "args": [1, 1]}, timeout=15)
        assert reply == {"status": "failed", "data": "the token has expired"}
    finally:
        await client.disconnect()


async def test_the_subject_goes_to_the_configured_kwarg_and_cannot_be_spoofed(start_gateway, http):
    gateway = await start_gateway(**SECURE, stirfried_subject_kwarg="user")
    token = MINT.mint("alice", ["echo_kwargs"])

    _, body = await post_task(
        http,
        gateway,
        {"task_name": "echo_kwargs", "kwargs": {"user": "mallory", "x": 1}},
        headers=bearer(token),
    )
    deadline = time.monotonic() + 20
    while True:
        async with http.get(
            url_of(gateway, f"/task/{body['data']}?token={body['token']}"), headers=bearer(token)
        ) as r:
            info = await r.json()
        if info["state"] == "SUCCESS" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert info["result"] == {"room": "NO_EMIT", "user": "alice", "x": 1}


async def test_a_follow_claim_opens_the_sse_stream_without_the_subscription_token(start_gateway, http):
    gateway = await start_gateway(**SECURE)
    _, body = await post_task(
        http,
        gateway,
        {"task_name": "progress", "args": [2]},
        headers=bearer(MINT.mint("alice", ["progress"])),
    )
    url = url_of(gateway, f"/task/{body['data']}/events")

    async with http.get(url, headers=bearer(MINT.mint("bob", follow=["another-task"]))) as response:
        assert response.status == 403
    async with http.get(url, headers=bearer(MINT.mint("support", follow=[body["data"]]))) as response:
        assert response.status == 200
        text = await response.text()
    assert "event: on_return" in text


def test_the_mint_command_makes_tokens_the_gateway_accepts(tmp_path, base_config):
    config = services.write_config(tmp_path / "gateway.yaml", {**base_config, **SECURE})
    result = subprocess.run(
        [sys.executable, "-m", "stirfried.server.token_cli", "--config", str(config), "--subject", "dev",
         "--tasks", "add,count_to", "--ttl", "60"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    principal = MINT.authenticate(result.stdout.strip())
    assert principal.subject == "dev" and principal.tasks == frozenset({"add", "count_to"})


async def test_the_python_client_connects_with_a_token(start_gateway):
    from stirfried.client import StirfriedClient

    gateway = await start_gateway(**SECURE)
    async with StirfriedClient(
        str(gateway.make_url("/")), token=MINT.mint("alice", ["add"]), timeout=15
    ) as client:
        assert await client.run("add", 20, 22) == 42


async def test_follow_tags_open_the_tasks_carrying_them(start_gateway, http):
    gateway = await start_gateway(**SECURE)
    alice = MINT.mint("alice", ["add"], tags=["team:billing"])
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]}, headers=bearer(alice))
    url = url_of(gateway, f"/task/{body['data']}")

    for follow_tags, status in (
        (["subject:alice"], 200),
        (["team:billing"], 200),
        (["subject:bob", "team:sales"], 403),
        ([], 403),
    ):
        async with http.get(url, headers=bearer(MINT.mint("watcher", follow_tags=follow_tags))) as response:
            assert response.status == status, (follow_tags, await response.text())
