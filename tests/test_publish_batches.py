"""Concurrent publishes share broker round trips, and every task still arrives intact."""

from __future__ import annotations

import asyncio

from tests.helpers import metric, post_task, url_of, wait_for_state

CONCURRENT = 200


async def test_concurrent_submissions_are_coalesced_and_each_task_runs_with_its_own_arguments(
    start_gateway, http, broker_url
):
    gateway = await start_gateway(stirfried_rate_limit=0)

    replies = await asyncio.gather(
        *(post_task(http, gateway, {"task_name": "add", "args": [n, 1000]}) for n in range(CONCURRENT))
    )

    assert [status for status, _ in replies] == [201] * CONCURRENT
    task_ids = [body["data"] for _, body in replies]
    assert len(set(task_ids)) == CONCURRENT
    for n, task_id in enumerate(task_ids):
        info = await wait_for_state(http, gateway, task_id)
        assert (info["state"], info["result"]) == ("SUCCESS", n + 1000)

    async with http.get(url_of(gateway, "/metrics")) as response:
        text = await response.text()
    assert metric(text, "stirfried_publish_batch_size_sum") == CONCURRENT
    batches = metric(text, "stirfried_publish_batch_size_count")
    if broker_url.startswith(("redis://", "rediss://")):
        # Redis transports batch (kombu's Producer.batch): far fewer round trips than tasks.
        assert batches < CONCURRENT / 2
    else:
        # py-amqp publishes one message per call (no round trip to save without confirms).
        assert batches == CONCURRENT


async def test_an_unencodable_task_fails_alone_among_concurrent_submissions(start_gateway, http):
    gateway = await start_gateway(
        stirfried_rate_limit=0, task_serializer="msgpack", result_serializer="msgpack"
    )
    good = [{"task_name": "add", "args": [n, 1]} for n in range(20)]
    bad = {"task_name": "add", "args": [2**64, 1]}

    replies = await asyncio.gather(
        *(post_task(http, gateway, task) for task in [*good[:10], bad, *good[10:]])
    )

    statuses = [status for status, _ in replies]
    assert statuses == [201] * 10 + [400] + [201] * 10
    assert "cannot be serialized" in replies[10][1]["data"]
    for _, body in [*replies[:10], *replies[11:]]:
        assert (await wait_for_state(http, gateway, body["data"]))["state"] == "SUCCESS"
