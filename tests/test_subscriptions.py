"""Never miss an event: subscribe_task with replay, late subscribers, tokens, coalescing.

Every test runs against real workers; "exactly once, in order" is checked on
the ``event_id``\\ s a client ends up with.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from stirfried import protocol
from stirfried.server.app_keys import SOCKETIO
from stirfried.server.session_guard import drop_transport
from stirfried.server.subscriptions import SYNTHESIS_GRACE
from tests.helpers import post_task, seed_payload, wait_for_state

SECRET = {"stirfried_token_secret": "a secret the whole test fleet shares"}


def event_ids(client: Any, task_id: str) -> list[int]:
    return [data["event_id"] for _, data in client.events_for(task_id)]


def finished(client: Any, task_id: str) -> bool:
    return any(name == protocol.ON_RETURN for name, _ in client.events_for(task_id))


async def schedule(client: Any, task: dict[str, Any]) -> tuple[str, str]:
    reply = await client.call("send_task", task)
    assert reply["status"] == "success", reply
    return reply["data"], reply["token"]


async def test_a_new_connection_resubscribes_and_gets_every_event_exactly_once(
    start_gateway, connect, event_redis
):
    gateway = await start_gateway(**event_redis)
    first = await connect(gateway)
    task_id, token = await schedule(first, {"task_name": "slow_progress", "args": [30, 0.02]})
    await first.wait_for(lambda _: len(first.events_for(task_id)) >= 5)
    await first.disconnect()
    seen = event_ids(first, task_id)

    second = await connect(gateway)
    reply = await second.call("subscribe_task", {"task_id": task_id, "after": seen[-1], "token": token})
    assert reply == {"status": "success", "data": task_id}
    await second.wait_for(lambda _: finished(second, task_id))

    # 30 progress events, on_success, on_return: nothing lost, nothing twice.
    assert seen + event_ids(second, task_id) == list(range(1, 33))


async def test_a_dropped_transport_then_resubscribe_at_the_seam_has_no_gap_or_duplicate(
    start_gateway, connect, event_redis
):
    gateway = await start_gateway(**event_redis)
    client = await connect(gateway, reconnection=True)
    task_id, token = await schedule(client, {"task_name": "slow_progress", "args": [60, 0.01]})
    await client.wait_for(lambda _: len(client.events_for(task_id)) >= 3)

    sio = gateway.app[SOCKETIO]
    old_sid = client.sid
    await drop_transport(sio.eio, sio.eio.sockets[sio.manager.eio_sid_from_sid(old_sid, "/")])
    await client.wait_for(lambda _: client.sio.connected and client.sio.get_sid() != old_sid)
    # Resubscribe while the task is still emitting: the seam is live.
    last = event_ids(client, task_id)[-1]
    reply = await client.call("subscribe_task", {"task_id": task_id, "after": last, "token": token})
    assert reply["status"] == "success"
    await client.wait_for(lambda _: finished(client, task_id))

    assert event_ids(client, task_id) == list(range(1, 63))


async def test_joining_a_flood_midway_replays_and_goes_live_without_gap_or_duplicate(
    start_gateway, connect, event_redis
):
    gateway = await start_gateway(**event_redis)
    owner = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "slow_progress", "args": [600, 0.0005]})
    await owner.wait_for(lambda _: len(owner.events_for(task_id)) >= 100)

    # The replay of ~100+ events runs while new ones keep arriving: a busy seam.
    follower = await connect(gateway)
    await follower.call("subscribe_task", {"task_id": task_id, "token": token})
    await follower.wait_for(lambda _: finished(follower, task_id))

    assert event_ids(follower, task_id) == list(range(1, 603))
    assert follower.events_for(task_id) == owner.events_for(task_id)


async def test_a_gateway_restart_mid_task_loses_nothing(start_gateway, connect, event_redis):
    before = await start_gateway(**SECRET, **event_redis)
    client = await connect(before)
    task_id, token = await schedule(client, {"task_name": "slow_progress", "args": [40, 0.02]})
    await client.wait_for(lambda _: len(client.events_for(task_id)) >= 5)
    await before.close()  # events go on being emitted (and logged) while no gateway runs

    after = await start_gateway(**SECRET, **event_redis)
    again = await connect(after)
    seen = event_ids(client, task_id)
    reply = await again.call("subscribe_task", {"task_id": task_id, "after": seen[-1], "token": token})
    assert reply["status"] == "success", reply
    await again.wait_for(lambda _: finished(again, task_id))

    assert seen + event_ids(again, task_id) == list(range(1, 43))


async def test_subscribing_after_the_task_finished_replays_all_of_it(start_gateway, connect):
    gateway = await start_gateway()
    owner = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "progress", "args": [3]})
    await owner.wait_for(lambda _: finished(owner, task_id))

    late = await connect(gateway)
    await late.call("subscribe_task", {"task_id": task_id, "token": token})
    await late.wait_for(lambda _: finished(late, task_id))

    assert late.events_for(task_id) == owner.events_for(task_id)
    assert [name for name, _ in late.events_for(task_id)][-2:] == [protocol.ON_SUCCESS, protocol.ON_RETURN]


async def test_an_expired_log_gives_a_synthesized_final_event_from_the_result_backend(
    start_gateway, connect, redis_url
):
    gateway = await start_gateway()
    owner = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "add", "args": [20, 22]})
    await owner.wait_for(lambda _: finished(owner, task_id))
    with redis.Redis.from_url(redis_url) as client:
        client.delete(protocol.event_log_key(task_id), protocol.event_sequence_key(task_id))
    # Within its grace period a missing log means "not written yet"; after it, "expired".
    await asyncio.sleep(SYNTHESIS_GRACE)

    late = await connect(gateway)
    await late.call("subscribe_task", {"task_id": task_id, "token": token})
    await late.wait_for(lambda _: finished(late, task_id))

    (success_name, success), (return_name, returned) = late.events_for(task_id)
    assert (success_name, return_name) == (protocol.ON_SUCCESS, protocol.ON_RETURN)
    assert success["retval"] == 42 and success["synthesized"] is True
    assert returned["status"] == "SUCCESS"


async def test_only_the_token_holder_may_subscribe(start_gateway, connect):
    gateway = await start_gateway()
    owner = await connect(gateway)
    stranger = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "slow_progress", "args": [10, 0.02]})
    other_id, other_token = await schedule(stranger, {"task_name": "add", "args": [1, 1]})

    for attempt in (
        {"task_id": task_id},
        {"task_id": task_id, "token": other_token},
        {"task_id": task_id, "token": token[:-1] + ("A" if token[-1] != "A" else "B")},
        {"task_id": task_id, "token": 12345},
    ):
        reply = await stranger.call("subscribe_task", attempt)
        assert reply["status"] == "failed", attempt
        assert "token" in reply["data"]

    await owner.wait_for(lambda _: finished(owner, task_id))
    await stranger.wait_for(lambda _: finished(stranger, other_id))
    assert stranger.events_for(task_id) == []
    assert token != other_token


async def test_bad_subscription_requests_get_clear_failures(gateway, connect):
    client = await connect(gateway)
    for data, fragment in [
        ("just-an-id", "object"),
        ({"task_id": ""}, "task id"),
        ({"task_id": "x", "after": -1, "token": "t"}, "after"),
        ({"task_id": "x", "after": "soon", "token": "t"}, "after"),
        ({"task_id": "x", "token": "t", "extra": 1}, "unknown field"),
    ]:
        reply = await client.call("subscribe_task", data)
        assert reply["status"] == "failed" and fragment in reply["data"], (data, reply)


async def test_unsubscribe_stops_a_subscribers_events(gateway, connect):
    owner = await connect(gateway)
    follower = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "slow_progress", "args": [40, 0.02]})
    await follower.call("subscribe_task", {"task_id": task_id, "token": token})
    await follower.wait_for(lambda _: len(follower.events_for(task_id)) >= 3)

    assert await follower.call("unsubscribe_task", task_id) == {"status": "success", "data": task_id}
    count = len(follower.events_for(task_id))
    await owner.wait_for(lambda _: finished(owner, task_id))

    assert len(follower.events_for(task_id)) <= count + 1  # at most one already on its way
    assert not finished(follower, task_id)


async def test_the_scheduling_client_can_unsubscribe_and_subscribe_again(gateway, connect):
    owner = await connect(gateway)
    watcher = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "slow_progress", "args": [40, 0.02]})
    await watcher.call("subscribe_task", {"task_id": task_id, "token": token})
    await owner.wait_for(lambda _: len(owner.events_for(task_id)) >= 3)

    assert await owner.call("unsubscribe_task", task_id) == {"status": "success", "data": task_id}
    quiet_from = len(owner.events_for(task_id))
    await watcher.wait_for(lambda _: len(watcher.events_for(task_id)) >= quiet_from + 10)
    # Events also name the owner's own room (Stirfried 0.7.0's delivery); those stop too.
    assert len(owner.events_for(task_id)) <= quiet_from + 1  # at most one already on its way

    seen = event_ids(owner, task_id)
    await owner.call("subscribe_task", {"task_id": task_id, "after": seen[-1], "token": token})
    await owner.wait_for(lambda _: finished(owner, task_id))
    await watcher.wait_for(lambda _: finished(watcher, task_id))
    # Resubscribed after the last event it saw: everything exactly once, in order.
    assert event_ids(owner, task_id) == event_ids(watcher, task_id) == list(range(1, 43))


async def test_a_custom_room_cannot_be_a_reserved_task_room(start_gateway, connect):
    gateway = await start_gateway(stirfried_custom_rooms=True)
    client = await connect(gateway)
    reply = await client.call(
        "send_task", {"task_name": "add", "args": [1, 2], "room": protocol.task_room("someone-elses-task")}
    )
    assert reply["status"] == "failed" and "reserved" in reply["data"]


async def test_http_tasks_can_be_followed_with_the_token_from_the_response(gateway, http, connect):
    status, body = await post_task(http, gateway, {"task_name": "progress", "args": [2]})
    assert status == 201 and set(body) == {"status", "data", "token"}
    await wait_for_state(http, gateway, body["data"])

    client = await connect(gateway)
    await client.call("subscribe_task", {"task_id": body["data"], "token": body["token"]})
    await client.wait_for(lambda _: finished(client, body["data"]))

    assert [name for name, _ in client.events_for(body["data"])] == [
        protocol.ON_PROGRESS,
        protocol.ON_PROGRESS,
        protocol.ON_SUCCESS,
        protocol.ON_RETURN,
    ]


async def test_the_event_log_is_capped_and_expires(start_gateway, connect, redis_url):
    # The lifecycle fleet keeps 5 events for 3 seconds.
    gateway = await start_gateway(stirfried_celery_events=True)
    owner = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "progress", "args": [10]})
    await owner.wait_for(lambda _: finished(owner, task_id))
    total = event_ids(owner, task_id)[-1]

    with redis.Redis.from_url(redis_url) as client:
        assert client.xlen(protocol.event_log_key(task_id)) == 5
        assert 0 < client.ttl(protocol.event_log_key(task_id)) <= 3
        late = await connect(gateway)
        await late.call("subscribe_task", {"task_id": task_id, "token": token})
        await late.wait_for(lambda _: finished(late, task_id))
        assert event_ids(late, task_id) == list(range(total - 4, total + 1))

        await owner.wait_for(lambda _: not client.exists(protocol.event_log_key(task_id)), timeout=10)
        assert not client.exists(protocol.event_sequence_key(task_id))


async def test_celery_lifecycle_events_show_queued_then_started(start_gateway, connect):
    gateway = await start_gateway(stirfried_celery_events=True)
    client = await connect(gateway)
    task_id, _ = await schedule(client, {"task_name": "add", "args": [1, 2]})
    await client.wait_for(lambda _: finished(client, task_id))

    names = [name for name, _ in client.events_for(task_id)]
    assert names == [protocol.ON_RECEIVED, protocol.ON_STARTED, protocol.ON_SUCCESS, protocol.ON_RETURN]
    assert event_ids(client, task_id) == [1, 2, 3, 4]
    assert seed_payload(client.events_for(task_id)[0][1]) == {"task_id": task_id, "task_name": "add"}


async def test_a_revoked_task_ends_with_on_revoked(start_gateway, connect):
    gateway = await start_gateway(stirfried_celery_events=True)
    client = await connect(gateway)
    # Fill the fleet's two processes, then queue one more and revoke it.
    for _ in range(2):
        await schedule(client, {"task_name": "sleep", "args": [1.5]})
    task_id, _ = await schedule(client, {"task_name": "add", "args": [1, 2]})
    await client.call("revoke_task", task_id)

    await client.wait_for(lambda _: any(n == protocol.ON_REVOKED for n, _d in client.events_for(task_id)))
    names = [name for name, _ in client.events_for(task_id)]
    assert protocol.ON_SUCCESS not in names and names[-1] == protocol.ON_REVOKED


async def test_progress_coalescing_thins_the_flood_but_keeps_the_last(start_gateway, connect):
    gateway = await start_gateway(stirfried_progress_rate=10)
    client = await connect(gateway)
    task_id, token = await schedule(client, {"task_name": "slow_progress", "args": [200, 0.002]})
    await client.wait_for(lambda _: finished(client, task_id))

    received = client.events_for(task_id)
    progress = [data for name, data in received if name == protocol.ON_PROGRESS]
    assert len(progress) < 60  # 200 emitted in ~0.5-1 s at most 10 per second (+ the last)
    assert progress[-1]["current"] == 200
    assert [name for name, _ in received][-2:] == [protocol.ON_SUCCESS, protocol.ON_RETURN]
    ids = event_ids(client, task_id)
    assert ids == sorted(ids) and ids[-1] == 202

    # The log still has every event: a subscriber replaying it gets all 200.
    late = await connect(gateway)
    await late.call("subscribe_task", {"task_id": task_id, "token": token})
    await late.wait_for(lambda _: finished(late, task_id))
    assert event_ids(late, task_id) == list(range(1, 203))


async def test_a_resubscribe_with_the_epoch_of_a_lost_log_replays_the_new_log(gateway, connect, redis_url):
    owner = await connect(gateway)
    task_id, token = await schedule(owner, {"task_name": "slow_progress", "args": [40, 0.02]})
    await owner.wait_for(lambda _: len(owner.events_for(task_id)) >= 5)
    old_epoch = owner.events_for(task_id)[0][1]["epoch"]

    # What a Redis restart without persistence does to the task's log, mid-task.
    client = redis.asyncio.Redis.from_url(redis_url)
    keys = [
        protocol.event_sequence_key(task_id),
        protocol.event_log_key(task_id),
        protocol.epoch_key(task_id),
    ]
    await client.delete(*keys)
    await client.aclose()
    await owner.wait_for(lambda _: finished(owner, task_id))
    old = [data for _, data in owner.events_for(task_id) if data["epoch"] == old_epoch]
    new = [data for _, data in owner.events_for(task_id) if data["epoch"] != old_epoch]
    assert old and new and new[0]["event_id"] == 1

    # A client that saw the old log's events resumes after the last of them, with its epoch.
    follower = await connect(gateway)
    request = {"task_id": task_id, "after": old[-1]["event_id"], "epoch": old_epoch, "token": token}
    assert (await follower.call("subscribe_task", request))["status"] == "success"
    await follower.wait_for(lambda _: finished(follower, task_id))

    assert [data for _, data in follower.events_for(task_id)] == new
    bad = await follower.call("subscribe_task", {**request, "epoch": "not hex"})
    assert bad["status"] == "failed" and "epoch" in bad["data"]
