"""What a determined client tries, and what it gets: a clear refusal, never another's task.

Each test here failed against the gateway before the fix it describes (issue 13).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from stirfried import protocol
from stirfried.server.caller import Authenticator
from stirfried.server.redis_clients import CLIENT_NAME
from stirfried.server.subscriptions import SYNTHESIS_GRACE
from tests.helpers import post_task, url_of, wait_for_state

AUTH_SECRET = "a secret for hostile-client tests, 32+ bytes"
TOKENS = Authenticator(AUTH_SECRET, anonymous=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- Celery's built-in tasks ------------------------------------------------------------


@pytest.mark.parametrize("name", ["celery.chord_unlock", "celery.backend_cleanup", "celery.chord"])
async def test_celery_built_in_tasks_are_refused_on_an_open_gateway(gateway, http, name):
    status, body = await post_task(http, gateway, {"task_name": name, "kwargs": {"group_id": "x"}})

    assert status == 403 and "built-in" in body["data"], body


async def test_a_built_in_task_cannot_ride_along_in_a_chain(gateway, connect):
    client = await connect(gateway)

    reply = await client.call(
        "send_task", {"task_name": "add", "args": [1, 2], "chain": [{"task_name": "celery.chord_unlock"}]}
    )

    assert reply["status"] == "failed" and "celery.chord_unlock" in reply["data"]


async def test_a_token_for_any_task_still_cannot_schedule_built_ins(start_gateway, http):
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=AUTH_SECRET)
    token = TOKENS.mint("mallory", ["*"])

    status, body = await post_task(http, gateway, {"task_name": "celery.chord_unlock"}, headers=bearer(token))

    assert status == 403 and "built-in" in body["data"]


async def test_an_operator_can_still_offer_a_built_in_task_by_name(start_gateway, http):
    gateway = await start_gateway(stirfried_available_tasks=["add", "celery.backend_cleanup"])

    status, body = await post_task(http, gateway, {"task_name": "celery.backend_cleanup"})

    assert status == 201, body


# -- protected arguments ----------------------------------------------------------------


async def test_a_header_mapped_argument_given_positionally_is_refused_by_the_worker(start_gateway, http):
    gateway = await start_gateway(
        stirfried_header_task_map={"send_email": {"X-User": "user"}}, stirfried_error_info=True
    )

    _, body = await post_task(
        http, gateway, {"task_name": "send_email", "args": ["bob@example.com", "admin"]}
    )
    info = await wait_for_state(http, gateway, body["data"])

    assert info["state"] == "FAILURE", info
    assert "ProtectedArgument" in info["result"] and "'user'" in info["result"]


async def test_the_subject_argument_given_positionally_in_a_chain_link_is_refused(start_gateway, connect):
    # Tokens optional: an anonymous caller has no subject, so nothing fills ``user`` for it.
    gateway = await start_gateway(stirfried_auth_secret=AUTH_SECRET, stirfried_subject_kwarg="user")
    client = await connect(gateway)

    # The link gets the result ("ab") first, so "admin" would land in ``user``.
    await client.send_task(
        {"task_name": "add", "args": ["a", "b"], "chain": [{"task_name": "send_email", "args": ["admin"]}]}
    )
    received = await client.wait_for(
        lambda events: any(
            name == protocol.ON_RETURN and payload["task_name"] == "send_email" for name, payload in events
        )
    )

    # (The link runs on the fleet of the worker that ran ``add``, whose errors stay private.)
    [returned] = [p for n, p in received if n == protocol.ON_RETURN and p["task_name"] == "send_email"]
    assert returned["status"] == "FAILURE", returned


async def test_positional_arguments_that_are_not_protected_still_work(start_gateway, http):
    gateway = await start_gateway(stirfried_header_task_map={"send_email": {"X-User": "user"}})

    _, body = await post_task(
        http, gateway, {"task_name": "send_email", "args": ["bob@example.com"]}, headers={"X-User": "alice"}
    )
    info = await wait_for_state(http, gateway, body["data"])

    assert info["result"] == {"address": "bob@example.com", "user": "alice"}


# -- chains and budgets -----------------------------------------------------------------


async def test_a_chain_over_the_limit_is_a_400_naming_it(gateway, http):
    task = {"task_name": "add", "args": [1, 1], "chain": [{"task_name": "add", "args": [1]}] * 33}

    status, body = await post_task(http, gateway, task)

    assert status == 400 and "at most 32" in body["data"], body


async def test_each_chained_task_is_charged_to_the_rate_limit(start_gateway, http):
    gateway = await start_gateway(stirfried_rate_limit=1, stirfried_rate_burst=10)
    task = {"task_name": "add", "args": [1, 1], "chain": [{"task_name": "add", "args": [1]}] * 5}

    first, _ = await post_task(http, gateway, task)
    second, body = await post_task(http, gateway, task)

    assert (first, second) == (201, 429), body


async def test_revokes_and_reads_spend_the_same_budget_as_scheduling(start_gateway, http, connect, unique):
    gateway = await start_gateway(stirfried_rate_limit=1, stirfried_rate_burst=5)
    client = await connect(gateway)

    revokes = [await client.call("revoke_task", f"nothing-{unique}-{n}") for n in range(8)]
    refused = [reply for reply in revokes if reply["status"] == "failed"]
    status, _ = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})

    assert len(refused) >= 3 and all("too many requests" in reply["data"] for reply in refused)
    assert status == 429  # the same address: the revoke flood spent its budget


def test_the_result_backend_gets_the_gateways_socket_timeouts(gateway_config):
    from stirfried.config import translate
    from stirfried.server.app import gateway_celery_app

    app = gateway_celery_app(translate(gateway_config(stirfried_broker_timeout=2.5), environ={}))

    assert app.conf.redis_socket_timeout == 2.5
    assert app.conf.redis_socket_connect_timeout == 2.5
    assert app.backend.connparams["socket_timeout"] == 2.5  # type: ignore[attr-defined]


async def test_a_hung_result_backend_does_not_stop_publishes(start_gateway, connect, http, unique):
    # A result backend that accepts connections and never answers.
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    black_hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = black_hole.sockets[0].getsockname()[1]
    try:
        gateway = await start_gateway(
            result_backend=f"redis://127.0.0.1:{port}/0",
            stirfried_rate_limit=0,
            stirfried_broker_timeout=1.0,
        )
        client = await connect(gateway)

        reads = [client.call("task_info", f"unknown-{unique}-{n}") for n in range(40)]
        publishes = [post_task(http, gateway, {"task_name": "add", "args": [n, 1]}) for n in range(20)]
        results = await asyncio.gather(*reads, *publishes)
    finally:
        black_hole.close()

    read_replies, published = results[:40], results[40:]
    assert all(reply["status"] == "failed" for reply in read_replies)
    assert [status for status, _ in published] == [201] * 20, published


async def test_a_flood_of_revokes_and_reads_does_not_refuse_other_clients_publishes(
    start_gateway, connect, http
):
    gateway = await start_gateway(stirfried_rate_limit=0)
    flooder = await connect(gateway)
    issued = [await flooder.send_task({"task_name": "add", "args": [n, 1]}) for n in range(20)]

    # 600 revokes (each a broadcast every worker processes) and reads in flight at once,
    # while another client publishes 50 tasks.
    flood = [
        flooder.call("revoke_task" if n % 2 else "task_info", issued[n % len(issued)]) for n in range(600)
    ]
    publishes = [post_task(http, gateway, {"task_name": "add", "args": [n, 2]}) for n in range(50)]
    results = await asyncio.gather(*flood, *publishes)

    flood_replies, published = results[:600], results[600:]
    refused = [reply["data"] for reply in flood_replies if reply.get("status") == "failed"]
    answered = len(flood_replies) - len(refused)
    print(
        f"a flood of 600 revokes and reads: {answered} answered, {600 - answered} refused at once; "
        f"other client's publishes: {sum(status == 201 for status, _ in published)} of 50 accepted"
    )
    assert [status for status, _ in published] == [201] * 50, published
    assert all("busy" in message for message in refused), refused[:3]


# -- cross-site requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_a_body_that_is_not_declared_json_is_a_415(gateway, http, content_type):
    # What a cross-site page can send without a CORS preflight.
    body = '{"task_name": "add", "args": [1, 2]}'

    async with http.post(
        url_of(gateway, "/task"), data=body, headers={"Content-Type": content_type}
    ) as response:
        answer = await response.json()

    assert response.status == 415 and "application/json" in answer["data"], answer


async def test_a_dns_rebinding_page_is_not_the_gateways_own_origin(gateway, http):
    evil = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    asks_to_post = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    async with http.options(url_of(gateway, "/task"), headers={**evil, **asks_to_post}) as response:
        assert response.status == 403
    handshake = {"EIO": "4", "transport": "polling"}
    async with http.get(url_of(gateway, "/socket.io/"), params=handshake, headers=evil) as response:
        assert response.status == 400
    # The same page on loopback (the development setup) is the gateway's own.
    local = {"Host": f"127.0.0.1:{gateway.port}", "Origin": f"http://127.0.0.1:{gateway.port}"}
    async with http.options(url_of(gateway, "/task"), headers={**local, **asks_to_post}) as response:
        assert response.status == 204


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('{"task_name": "add", "args": [' + "9" * 5000 + ", 1]}", "5000 digits"),
        ('{"task_name": "add", "args": [NaN, 1]}', "NaN"),
        ('{"task_name": "add", "kwargs": {"x": -Infinity}}', "-Infinity"),
    ],
    ids=["huge-int", "nan", "infinity"],
)
async def test_numbers_tasks_cannot_take_are_a_400_naming_them(gateway, http, body, named):
    async with http.post(
        url_of(gateway, "/task"), data=body, headers={"Content-Type": "application/json"}
    ) as response:
        answer = await response.json()

    assert response.status == 400 and named in answer["data"], answer


async def test_a_huge_integer_over_socketio_gets_a_failed_reply(gateway, connect):
    client = await connect(gateway)
    # Python's own limit would stop this test's client from encoding the digits.
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        reply = await client.call("send_task", {"task_name": "add", "args": [10**4500, 1]})
    finally:
        sys.set_int_max_str_digits(limit)

    assert reply["status"] == "failed" and "digits" in reply["data"], reply


async def test_a_msgpack_map_with_bytes_keys_gets_a_failed_reply(start_gateway, connect):
    gateway = await start_gateway(socketio_serializer="msgpack")
    client = await connect(gateway, serializer="msgpack")

    reply = await client.call("send_task", {"task_name": "add", "args": [{b"key": 1}, 2]})

    assert reply["status"] == "failed" and "keys are not all strings" in reply["data"], reply


@pytest.mark.parametrize("event", ["*", "connect", "disconnect"])
async def test_reserved_and_odd_event_names_get_a_failed_reply(gateway, connect, event):
    client = await connect(gateway)

    reply = await client.sio.call(event, timeout=10)

    assert reply["status"] == "failed", reply
    assert (await client.call("send_task", {"task_name": "add", "args": [1, 2]}))["status"] == "success"


# -- logs and Redis -------------------------------------------------------------------------


async def test_subscription_tokens_are_masked_in_the_access_log(gateway_config, tmp_path, workers, http):
    from tests import services

    config = services.write_config(tmp_path / "gateway.yaml", gateway_config())
    log = tmp_path / "gateway.log"
    async with services.gateway_process(config, log) as running:
        async with http.get(
            f"{running.url}/task/some-task/events", params={"token": "SECRET-TOKEN-VALUE"}
        ) as response:
            assert response.status == 403

    text = log.read_text()
    assert "/task/some-task/events?token=***" in text
    assert "SECRET-TOKEN-VALUE" not in text


def test_check_config_masks_secrets_at_any_depth(tmp_path):
    import subprocess
    import sys

    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(
        "stirfried: {anonymous: true, refuse_unserved_tasks: false}\n"
        "broker_transport_options:\n  sentinel_kwargs: {password: hunter2}\n  global_keyprefix: x\n"
        "result_backend_transport_options: {retry_policy: {max_retries: 1}, Auth_Token: sesame}\n"
    )

    result = subprocess.run(
        [sys.executable, "-m", "stirfried.server", "--check-config", "--config", str(config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "sesame" not in result.stdout
    assert "password: '***'" in result.stdout and "global_keyprefix: x" in result.stdout


async def test_a_redis_that_dropped_its_connections_is_invisible_to_the_next_request(
    gateway, http, redis_url
):
    import redis.asyncio

    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    task_events = url_of(gateway, f"/task/{body['data']}/events")
    async with http.get(task_events, params={"token": body["token"]}) as response:
        assert response.status == 200
        await response.read()

    # What a Redis restart does to the gateway's pooled connections (only the gateway's:
    # the session's workers share this server).
    admin = redis.asyncio.Redis.from_url(redis_url)
    try:
        for client in await admin.client_list():
            if client["name"] == CLIENT_NAME:
                await admin.client_kill_filter(_id=client["id"])
    finally:
        await admin.aclose()

    async with http.get(task_events, params={"token": body["token"]}) as response:
        assert response.status == 200, await response.text()


# -- binary attachments -------------------------------------------------------------------


async def test_announced_binary_attachments_cannot_pile_up_in_the_gateway(gateway_config, tmp_path, workers):
    import aiohttp
    import psutil

    from tests import services

    config = services.write_config(tmp_path / "gateway.yaml", gateway_config())
    log = tmp_path / "gateway.log"
    async with services.gateway_process(config, log) as running, aiohttp.ClientSession() as http:
        memory = psutil.Process(running.process.pid)
        before = memory.memory_info().rss
        url = running.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(url) as websocket:
            assert (await websocket.receive_str()).startswith("0")
            await websocket.send_str("40")
            assert (await websocket.receive_str()).startswith("40")
            # A BINARY_EVENT announcing a million attachments, then 30 MB of them.
            await websocket.send_str('451000000-["send_task",{"_placeholder":true,"num":0}]')
            for _ in range(300):
                await websocket.send_bytes(b"x" * 100_000)
            await websocket.send_str("3")  # a ping-sized frame: the connection is still read
        grown = memory.memory_info().rss - before
        async with http.get(running.url + "/healthz") as response:
            assert response.status == 200

    print(
        f"one connection announcing a million attachments and sending 30 MB: the gateway grew by {grown / 1e6:.1f} MB"
    )
    assert grown < 10_000_000, f"the gateway grew by {grown / 1e6:.1f} MB"
    text = log.read_text()
    assert "a client sent a message the gateway refused" in text and "binary attachments" in text
    assert "Traceback" not in text


# -- streams and connections ----------------------------------------------------------------


async def test_an_sse_stream_ends_when_its_token_expires(start_gateway, http):
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=AUTH_SECRET)
    token = TOKENS.mint("alice", ["slow_progress"], ttl=2)
    _, body = await post_task(
        http, gateway, {"task_name": "slow_progress", "args": [30, 0.5]}, headers=bearer(token)
    )
    follower = TOKENS.mint("alice", [], follow=[body["data"]], ttl=2)
    started = asyncio.get_running_loop().time()

    async with http.get(
        url_of(gateway, f"/task/{body['data']}/events"), headers=bearer(follower)
    ) as response:
        text = await response.text()

    assert asyncio.get_running_loop().time() - started < 6  # the task itself runs 15 s
    assert "on_return" not in text


async def test_resuming_a_finished_tasks_stream_at_its_last_event_ends_at_once(gateway, http):
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    events = url_of(gateway, f"/task/{body['data']}/events")
    async with http.get(events, params={"token": body["token"]}) as response:
        last_id = [line for line in (await response.text()).splitlines() if line.startswith("id: ")][-1][4:]

    # What a browser's EventSource does after the stream ended: reconnect with Last-Event-ID.
    headers = {"Last-Event-ID": last_id}
    async with asyncio.timeout(5):
        async with http.get(events, params={"token": body["token"]}, headers=headers) as response:
            assert response.status == 200 and await response.text() == ""


async def test_an_unsubscribe_right_after_a_subscribe_wins(gateway, http, connect):
    _, body = await post_task(http, gateway, {"task_name": "slow_progress", "args": [6, 0.3]})
    await asyncio.sleep(0.5)  # some events are in the task's log by now
    client = await connect(gateway)
    subscribed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    # Sent in this order, back to back: the later request must win.
    await client.sio.emit(
        "subscribe_task", {"task_id": body["data"], "token": body["token"]}, callback=subscribed.set_result
    )
    unsubscribed = await client.call("unsubscribe_task", body["data"])
    assert (await subscribed)["status"] == unsubscribed["status"] == "success"
    await asyncio.sleep(2.5)

    assert client.events_for(body["data"]) == []


async def test_a_subscribe_after_that_unsubscribe_wins_again(gateway, http, connect):
    _, body = await post_task(http, gateway, {"task_name": "slow_progress", "args": [6, 0.3]})
    await asyncio.sleep(0.5)
    client = await connect(gateway)
    subscription = {"task_id": body["data"], "token": body["token"]}
    first: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    # Back to back: subscribe, unsubscribe, subscribe; the last request wins.
    await client.sio.emit("subscribe_task", subscription, callback=first.set_result)
    await client.sio.emit("unsubscribe_task", body["data"])
    last = await client.call("subscribe_task", subscription)
    await first

    assert last["status"] == "success" or "already subscribing" in last["data"], last
    if last["status"] == "success":
        await client.wait_for_event(protocol.ON_RETURN, body["data"])
    else:  # refused while the first still ran: the unsubscribe stands
        await wait_for_state(http, gateway, body["data"])
        await asyncio.sleep(0.5)
        assert client.events_for(body["data"]) == []


async def test_unsubscribing_from_made_up_task_ids_keeps_no_record(gateway, connect, unique):
    from stirfried.server.app_keys import SUBSCRIPTIONS

    client = await connect(gateway)
    for n in range(1200):
        await client.sio.emit("unsubscribe_task", f"made-up-{unique}-{n}" + "x" * 200)
    last = await client.call("unsubscribe_task", f"made-up-{unique}-last")

    assert last["status"] == "success"
    # 100 connections of one address once held 80 MB this way: nothing was there to stop.
    assert client.sid not in gateway.app[SUBSCRIPTIONS]._relay._unsubscribed_by_sid


async def test_sse_streams_count_against_the_connections_per_address(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_max_connections_per_ip=2)
    _, body = await post_task(http, gateway, {"task_name": "slow_progress", "args": [20, 0.5]})
    events = url_of(gateway, f"/task/{body['data']}/events")

    async with http.get(events, params={"token": body["token"]}) as first:
        await first.content.readline()
        await connect(gateway)  # the second connection of this address
        async with http.get(events, params={"token": body["token"]}) as third:
            refused = await third.json()

    assert third.status == 429 and "too many connections" in refused["data"]


async def test_one_address_cannot_hold_more_sockets_than_its_connections_need(
    gateway_config, tmp_path, workers
):
    import aiohttp

    from tests import services

    config = services.write_config(
        tmp_path / "gateway.yaml", gateway_config(stirfried_max_connections_per_ip=100)
    )
    async with services.gateway_process(config, tmp_path / "gateway.log") as running:
        port = int(running.url.rsplit(":", 1)[1])
        # 1,000 sockets from 127.0.0.2 that never send a byte (the same host, another address).
        sockets = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)) for _ in range(1000)
        ]
        answers = await asyncio.gather(
            *(asyncio.wait_for(reader.read(), 1) for reader, _ in sockets), return_exceptions=True
        )
        refused = [answer for answer in answers if isinstance(answer, bytes)]
        held = sum(isinstance(answer, TimeoutError) for answer in answers)
        async with aiohttp.ClientSession() as http:  # everyone else, from 127.0.0.1
            async with http.get(running.url + "/healthz") as health:
                healthy = health.status
        descriptors = len(list(Path(f"/proc/{running.process.pid}/fd").iterdir()))
        for _, writer in sockets:
            writer.close()
        print(
            f"1,000 idle sockets from one address: {held} held, {len(refused)} refused (429); "
            f"the gateway held {descriptors} file descriptors; /healthz for others: {healthy}"
        )

    assert held == 400 and len(refused) == 600  # 4 x stirfried_max_connections_per_ip
    assert all(
        answer.startswith(b"HTTP/1.1 429 ") and b"too many connections" in answer for answer in refused
    )
    assert healthy == 200
    assert descriptors < 500


async def test_the_gateway_raises_its_open_file_limit(gateway_config, tmp_path, workers):
    import resource

    from tests import services

    config = services.write_config(tmp_path / "gateway.yaml", gateway_config())
    async with services.gateway_process(config, tmp_path / "gateway.log") as running:
        limits = Path(f"/proc/{running.process.pid}/limits").read_text()

    [line] = [line for line in limits.splitlines() if line.startswith("Max open files")]
    soft, hard = line.split()[3:5]
    assert soft == hard == str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])


async def test_an_expired_token_receives_no_more_events_on_an_open_connection(start_gateway, connect):
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=AUTH_SECRET)
    client = await connect(gateway, auth={"token": TOKENS.mint("alice", ["slow_progress"], ttl=2)})

    task_id = await client.send_task({"task_name": "slow_progress", "args": [20, 0.25]})
    await asyncio.sleep(3)  # the token expired after 1 to 2 s
    received = len(client.events_for(task_id))
    await asyncio.sleep(2)

    assert 0 < received == len(client.events_for(task_id))
    reply = await client.call("task_info", task_id)
    assert reply == {"status": "failed", "data": "the token has expired"}


async def test_engineio_sessions_that_never_connect_are_capped_and_closed(start_gateway, http):
    import aiohttp

    gateway = await start_gateway(stirfried_max_connections_per_ip=3)
    url = str(gateway.make_url("/socket.io/")).replace("http", "ws") + "?EIO=4&transport=websocket"
    # Engine.IO sessions that never CONNECT: twice the connection limit, then 429.
    idle = [await http.ws_connect(url) for _ in range(6)]
    for websocket in idle:
        assert (await websocket.receive_str()).startswith("0")

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url)
    assert refused.value.status == 429

    closed = await asyncio.wait_for(asyncio.gather(*(websocket.receive() for websocket in idle)), 10)
    assert all(message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) for message in closed)
    for websocket in idle:
        await websocket.close()


async def test_an_oversized_polling_post_is_answered_and_its_session_then_refused_cleanly(gateway, http):
    base = url_of(gateway, "/socket.io/")
    async with http.get(base, params={"EIO": "4", "transport": "polling"}) as response:
        import json

        sid = json.loads((await response.text())[1:])["sid"]
    session = {"EIO": "4", "transport": "polling", "sid": sid}

    async with asyncio.timeout(10):
        async with http.post(base, params=session, data=io.BytesIO(b"4" + b"a" * 200_000)) as response:
            assert response.status == 413, await response.text()
        async with http.post(base, params=session, data=b"40") as response:
            assert response.status < 500, await response.text()


# -- what aiohttp's HTTP parser refuses, and slow headers ---------------------------------


async def exchange(url: str, *parts: bytes | float, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes (a float: pause that long) to the gateway at ``url`` while reading its
    answer; its status, headers and body (status 0: it closed without one)."""
    from yarl import URL

    reader, writer = await asyncio.open_connection(URL(url).host, URL(url).port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError):  # the gateway closed the connection
            for part in parts:
                if isinstance(part, float):
                    await asyncio.sleep(part)
                else:
                    writer.write(part)
                    await writer.drain()

    sending = asyncio.create_task(send())
    try:
        async with asyncio.timeout(timeout):
            answer = await reader.read()
    finally:
        sending.cancel()
        writer.close()
    if not answer:
        return 0, {}, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


MALFORMED_REQUESTS = {
    "a request line that is not HTTP": (b"GARBAGE\r\n\r\n", 400, "Invalid method"),
    "a header name with a space": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, "header"),
    "a control character in a header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400, "header"),
    "a header over 8190 bytes": (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431, "8190 bytes"),
    "a request line over 8190 bytes": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 431, "8190 bytes"),
    "too many headers": (b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * 200 + b"\r\n", 400, "Too many headers"),
    "a bad Content-Length": (b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "Content-Length"),
    "invalid chunked encoding": (
        b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
        400, "chunk size",
    ),
    "TLS on the HTTP port": (b"\x16\x03\x01\x00\xa5\x01\x00\x00", 400, "HTTPS traffic"),
}  # fmt: skip


@pytest.mark.parametrize("name", MALFORMED_REQUESTS)
async def test_what_the_http_parser_refuses_is_a_json_refusal_naming_it(gateway, name):
    request, expected_status, named = MALFORMED_REQUESTS[name]

    status, headers, body = await exchange(url_of(gateway, ""), request)

    assert status == expected_status, body
    assert headers["content-type"].startswith("application/json")
    reply = json.loads(body)
    assert reply["status"] == "failed" and named in reply["data"], reply


async def test_invalid_chunked_encoding_after_the_headers_is_a_400_not_a_hang(gateway):
    head = b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"

    # The head first, the broken chunk later: aiohttp's parser dropped the body without
    # ending it, and the request waited until the client gave up.
    status, _, body = await exchange(url_of(gateway, ""), head, 0.2, b"2\r\n{}\r\nZZ\r\n", timeout=5)

    assert status == 400, body
    assert json.loads(body) == {
        "status": "failed",
        "data": "the request body is malformed: Invalid character in chunk size: b'ZZ'",
    }


async def test_stirfried_server_answers_parser_errors_in_json_and_logs_them_briefly(
    gateway_config, tmp_path, workers
):
    from tests import services

    config = services.write_config(tmp_path / "gateway.yaml", gateway_config())
    log = tmp_path / "gateway.log"
    async with services.gateway_process(config, log) as running:
        for _ in range(15):
            status, headers, body = await exchange(
                running.url, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"
            )
            assert status == 400 and headers["content-type"].startswith("application/json"), body

    text = log.read_text()
    assert "a client sent a message the gateway refused: BadHttpMessage" in text, text
    assert text.count("a client sent a message the gateway refused") == 10  # then rate limited
    assert "Traceback" not in text and " ERROR " not in text


async def test_a_client_that_trickles_its_headers_is_answered_408_and_dropped(
    gateway_config, tmp_path, workers
):
    from tests import services

    task = json.dumps({"task_name": "add", "args": [1, 2]}).encode()
    slow_body = (
        b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(task), task[:5]),
        12.0,
        task[5:],
    )
    config = services.write_config(tmp_path / "gateway.yaml", gateway_config())
    async with services.gateway_process(config, tmp_path / "gateway.log") as running:
        started = asyncio.get_running_loop().time()
        trickle = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"] + [
            part for _ in range(30) for part in (1.0, b"X: y\r\n")
        ]
        (status, _, body), silent, (slow_status, _, _) = await asyncio.gather(
            exchange(running.url, *trickle, timeout=30),
            exchange(running.url, timeout=30),  # connects, sends nothing
            exchange(running.url, *slow_body, timeout=30),  # a slow body is not a slow head
        )
        took = asyncio.get_running_loop().time() - started

    assert status == 408, body
    assert json.loads(body) == {
        "status": "failed",
        "data": "the request's headers did not arrive within 10 s",
    }
    assert silent == (0, {}, b"")
    assert slow_status == 201
    assert 12 < took < 16, took


# -- how far a subscription token reaches ----------------------------------------------------


async def test_a_subscription_token_reaches_only_what_is_still_kept_of_its_task(
    gateway, http, connect, redis_url
):
    import redis.asyncio

    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    task_id, token = body["data"], body["token"]
    assert (await wait_for_state(http, gateway, task_id))["state"] == "SUCCESS"
    subscription = {"task_id": task_id, "token": token}
    store = redis.asyncio.Redis.from_url(redis_url)  # the session's event Redis and result backend
    try:
        # What stirfried_event_log_ttl does in time: the log is gone, the result still kept.
        await store.delete(
            protocol.event_log_key(task_id), protocol.event_sequence_key(task_id), protocol.epoch_key(task_id)
        )
        kept = await connect(gateway)
        assert (await kept.call("subscribe_task", subscription))["status"] == "success"
        assert (await kept.wait_for_event("on_success", task_id, timeout=10))["retval"] == 3

        # What Celery's result_expires does in time: nothing is kept, the token opens nothing.
        await store.delete(f"celery-task-meta-{task_id}")
        gone = await connect(gateway)
        assert (await gone.call("subscribe_task", subscription))["status"] == "success"
        await asyncio.sleep(SYNTHESIS_GRACE + 1)
    finally:
        await store.aclose()

    assert gone.events_for(task_id) == []
    async with http.get(url_of(gateway, f"/task/{task_id}")) as response:
        assert (await response.json())["state"] == "PENDING"  # Celery's word for "unknown"
