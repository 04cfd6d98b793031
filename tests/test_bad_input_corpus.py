"""A checked-in corpus of malformed requests (tests/corpus/): every one gets a clear refusal.

HTTP cases must get a 4xx with ``{"status": "failed", "data": "<message>"}``;
Socket.IO cases a ``failed`` reply with a message. Afterwards the gateway still
schedules and relays a good task, for the client that sent the garbage too.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from stirfried import protocol
from tests import services
from tests.helpers import post_task, url_of

CORPUS = services.REPOSITORY / "tests" / "corpus"
HTTP_CASES: list[dict[str, Any]] = json.loads((CORPUS / "http.json").read_text())
SOCKETIO_CASES: list[dict[str, Any]] = json.loads((CORPUS / "socketio.json").read_text())
CORPUS_SETTINGS = {"stirfried_available_tasks": ["add"], "stirfried_rate_limit": 0}


def test_the_corpus_has_at_least_a_hundred_cases():
    assert len(HTTP_CASES) + len(SOCKETIO_CASES) >= 100
    assert len({case["name"] for case in HTTP_CASES + SOCKETIO_CASES}) == len(HTTP_CASES) + len(
        SOCKETIO_CASES
    )


async def test_every_malformed_http_request_gets_a_4xx_naming_the_problem(start_gateway, http):
    gateway = await start_gateway(**CORPUS_SETTINGS)
    outcomes: dict[str, tuple[int, Any]] = {}
    for case in HTTP_CASES:
        body = case["body"].encode("utf-8", "surrogatepass") if case["body"] is not None else None
        async with http.request(
            case["method"], url_of(gateway, case["path"]), data=body, headers=case["headers"]
        ) as response:
            text = await response.text()
            try:
                reply = json.loads(text)
            except ValueError:
                reply = text
            outcomes[case["name"]] = (response.status, reply)

    wrong = {
        name: outcome
        for name, (status, reply) in outcomes.items()
        if not (400 <= status < 500)
        or not isinstance(reply, dict)
        or reply.get("status") != "failed"
        or not isinstance(reply.get("data"), str)
        or not reply["data"].strip()
        for outcome in [(status, reply)]
    }
    assert wrong == {}
    status, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    assert status == 201, body


@pytest.mark.parametrize("serializer", ["default", "msgpack"])
async def test_every_malformed_socketio_message_gets_a_failed_reply(start_gateway, connect, serializer):
    gateway = await start_gateway(**CORPUS_SETTINGS, socketio_serializer=serializer)
    client = await connect(gateway, serializer=serializer)
    wrong = {}
    for case in SOCKETIO_CASES:
        reply = await client.call(case["event"], *case["args"])
        if not (
            isinstance(reply, dict) and reply.get("status") == "failed" and str(reply.get("data", "")).strip()
        ):
            wrong[case["name"]] = reply
    assert wrong == {}

    task_id = await client.send_task({"task_name": "add", "args": [20, 22]})
    assert (await client.wait_for_event(protocol.ON_SUCCESS, task_id))["retval"] == 42


async def test_a_raw_frame_too_deep_to_parse_does_not_hurt_other_clients(start_gateway, connect):
    gateway = await start_gateway(**CORPUS_SETTINGS)
    bystander = await connect(gateway)
    url = url_of(gateway, "/socket.io/?EIO=4&transport=websocket").replace("http://", "ws://")
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive_str()
        await ws.send_str("40")
        await ws.receive_str()
        await ws.send_str('421["send_task",' + "[" * 30000 + "]" * 30000 + "]")
        await ws.send_str('422["send_task",{"task_name":"add","args":[' + "{" * 5 + "]]}]")
        await asyncio.sleep(0.5)

    task_id = await bystander.send_task({"task_name": "add", "args": [1, 1]})
    assert (await bystander.wait_for_event(protocol.ON_SUCCESS, task_id))["retval"] == 2
