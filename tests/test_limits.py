"""Limits and origins: sizes, nesting, rates, connections per address, CORS; the gateway keeps serving."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import socketio

from stirfried.server.caller import client_address
from stirfried.server.errors import RateLimited
from stirfried.server.limits import RateLimiter
from tests.helpers import post_task, url_of


def test_token_bucket_allows_the_burst_then_the_rate():
    limiter = RateLimiter(rate=2, burst=3)
    for _ in range(3):
        limiter.take("a", now=100.0)
    with pytest.raises(RateLimited):
        limiter.take("a", now=100.0)
    limiter.take("b", now=100.0)  # buckets are per client
    limiter.take("a", now=100.5)  # one token back after 1/rate seconds
    with pytest.raises(RateLimited):
        limiter.take("a", now=100.5)


def test_work_charged_afterwards_may_overdraw_once_and_is_refused_in_debt():
    limiter = RateLimiter(rate=1, burst=3)
    limiter.charge("a", 5, now=100.0)  # a replay longer than the burst still goes out: 3 -> -2
    with pytest.raises(RateLimited):
        limiter.charge("a", 1, now=100.0)  # read side by side with it: refused, charged: -3
    with pytest.raises(RateLimited):
        limiter.take("a", 0.2, now=102.5)  # -0.5 after 2.5 s of refill
    limiter.take("a", 0.2, now=103.5)  # the debt is paid off at the rate
    limiter.charge("b", 0.5, now=100.0)  # other clients are not touched


async def test_no_proxy_is_trusted_by_default(start_gateway, http):
    gateway = await start_gateway(stirfried_rate_limit=1, stirfried_rate_burst=1)
    task = {"task_name": "add", "args": [1, 1]}

    assert (await post_task(http, gateway, task))[0] == 201
    # A forged X-Forwarded-For from a loopback peer does not buy a fresh bucket.
    status, _ = await post_task(http, gateway, task, headers={"X-Forwarded-For": "198.51.100.9"})
    assert status == 429


def test_the_client_address_behind_trusted_proxies():
    trusted = frozenset({"127.0.0.1", "10.0.0.2"})
    assert client_address("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"  # untrusted peer: ignore header
    assert client_address("127.0.0.1", "198.51.100.7", trusted) == "198.51.100.7"
    # A client may prepend anything; the last hop before our proxies counts.
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2", trusted) == "198.51.100.7"
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"


async def test_oversized_and_over_nested_requests_are_refused_and_the_gateway_keeps_serving(
    start_gateway, http, connect
):
    gateway = await start_gateway(stirfried_max_request_bytes=2048, stirfried_max_nesting=5)
    big = {"task_name": "add", "args": ["x" * 4000, "y"]}
    deep: list[Any] = []
    for _ in range(10):
        deep = [deep]

    status, body = await post_task(http, gateway, big)
    assert status == 413 and "larger than 2048 bytes" in body["data"]
    status, body = await post_task(http, gateway, {"task_name": "add", "args": [deep, 1]})
    assert status == 400 and "nests deeper than 5" in body["data"]

    client = await connect(gateway)
    assert (await client.call("send_task", {"task_name": "add", "args": ["x" * 3000, "y"]}))["data"] == (
        "the task object is larger than 2048 bytes"
    )
    reply = await client.call("send_task", {"task_name": "add", "kwargs": {"a": {"b": deep}}})
    assert reply["status"] == "failed" and "nests deeper" in reply["data"]

    status, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    assert status == 201
    assert (await client.call("send_task", {"task_name": "add", "args": [1, 2]}))["status"] == "success"


async def test_tasks_per_client_per_second_are_limited(start_gateway, http, connect):
    gateway = await start_gateway(
        stirfried_rate_limit=1, stirfried_rate_burst=3, stirfried_trusted_proxies=["127.0.0.1", "::1"]
    )
    task = {"task_name": "add", "args": [1, 1]}

    statuses = [(await post_task(http, gateway, task))[0] for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    # Another client (behind the trusted local proxy) has a bucket of its own.
    status, _ = await post_task(http, gateway, task, headers={"X-Forwarded-For": "198.51.100.7"})
    assert status == 201

    office = {"X-Forwarded-For": "203.0.113.5"}
    client = await connect(gateway, headers=office)
    replies = [await client.call("send_task", task) for _ in range(3)]
    assert [reply["status"] for reply in replies] == ["success"] * 3
    # A new connection from the same address does not get a fresh bucket.
    again = await connect(gateway, headers=office)
    reply = await again.call("send_task", task)
    assert reply["status"] == "failed" and "too many requests" in reply["data"]


async def test_connections_per_address_are_capped(start_gateway, connect):
    gateway = await start_gateway(stirfried_max_connections_per_ip=2)
    first, second = await connect(gateway), await connect(gateway)

    third = socketio.AsyncClient(reconnection=False)
    refusals: list[dict[str, Any]] = []
    third.on("connect_error", refusals.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await third.connect(str(gateway.make_url("/")), transports=["websocket"], wait_timeout=10)
    assert refusals[0]["message"] == "too many connections from this address"

    await first.disconnect()  # a slot frees up
    replacement = await connect(gateway)
    assert replacement.sio.connected and second.sio.connected


async def test_cors_allows_only_the_configured_origins(start_gateway, http):
    gateway = await start_gateway(stirfried_cors_origins=["https://app.example.com"])
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    async with http.options(
        url_of(gateway, "/task"), headers={"Origin": "https://app.example.com", **preflight}
    ) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    async with http.options(
        url_of(gateway, "/task"), headers={"Origin": "https://evil.example", **preflight}
    ) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    async with http.get(url_of(gateway, "/task/x"), headers={"Origin": "https://evil.example"}) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    async with http.get(url_of(gateway, "/task/x"), headers={"Origin": "https://app.example.com"}) as r:
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


async def test_socketio_handshakes_from_other_origins_are_refused(gateway):
    own = str(gateway.make_url("/")).rstrip("/")
    url = url_of(gateway, "/socket.io/?EIO=4&transport=polling")
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Origin": "https://evil.example"}) as response:
            assert response.status == 400 and "not an accepted origin" in await response.text()
        async with session.get(url, headers={"Origin": own}) as response:
            assert response.status == 200


async def test_the_production_example_config_lets_its_origin_fetch_and_connect(
    workers, base_config, serve_app
):
    """config/production.example.yaml as shipped (services and secrets from the environment,
    as deploy/README.md does it): a page of its origin can POST /task and use Socket.IO."""
    import time
    from pathlib import Path

    import jwt

    from stirfried.config import load_config
    from stirfried.server.app import create_app
    from tests.conftest import QUIET_QUEUE

    secret = "s" * 40
    config = await asyncio.to_thread(
        load_config,
        Path(__file__).resolve().parent.parent / "config" / "production.example.yaml",
        environ={
            "STIRFRIED_BROKER_URL": base_config["broker_url"],
            "STIRFRIED_RESULT_BACKEND": base_config["result_backend"],
            "STIRFRIED_REDIS_URL": base_config["stirfried_redis_url"],
            "STIRFRIED_AUTH_SECRET": secret,
        },
    )
    config = config.with_celery(task_default_queue=QUIET_QUEUE, accept_content=["json", "msgpack"])
    assert config.stirfried.cors_origins == ("https://app.example.com",)
    gateway = await serve_app(await asyncio.to_thread(create_app, config))
    token = jwt.encode({"sub": "page", "exp": int(time.time()) + 60, "tasks": ["*"]}, secret, "HS256")
    origin = {"Origin": "https://app.example.com"}

    async with aiohttp.ClientSession() as http:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        async with http.options(url_of(gateway, "/task"), headers={**origin, **preflight}) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
            assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
        async with http.post(
            url_of(gateway, "/task"),
            json={"task_name": "add", "args": [2, 3]},
            headers={**origin, "Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201, await response.text()
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"

    page = socketio.AsyncClient()
    await page.connect(str(gateway.make_url("/")), headers=origin, auth={"token": token}, wait_timeout=10)
    try:
        reply = await page.call("send_task", {"task_name": "add", "args": [1, 1]}, timeout=10)
        assert reply["status"] == "success"
    finally:
        await page.disconnect()
    stranger = socketio.AsyncClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await stranger.connect(
            str(gateway.make_url("/")),
            headers={"Origin": "https://evil.example"},
            auth={"token": token},
            transports=["polling"],
            wait_timeout=10,
        )


def test_socketio_cors_option_is_refused_in_favour_of_the_one_setting():
    from stirfried.config import translate
    from stirfried.server.socketio_options import socketio_options
    from stirfried.settings import ConfigError

    with pytest.raises(ConfigError, match="stirfried_cors_origins"):
        socketio_options(translate({"socketio_cors_allowed_origins": ["https://x"]}, environ={}))
