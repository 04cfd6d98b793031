"""The HTTP API: POST/GET/DELETE /task and its error replies."""

from __future__ import annotations

import io
import time

from tests.helpers import post_task, url_of, wait_for_state

JSON = {"Content-Type": "application/json"}


async def test_post_task_answers_201_with_the_task_id_and_the_task_runs(gateway, http):
    status, body = await post_task(http, gateway, {"task_name": "add", "args": [20, 22]})

    assert status == 201
    assert body["status"] == "success"
    info = await wait_for_state(http, gateway, body["data"])
    assert info == {"id": body["data"], "state": "SUCCESS", "result": 42}


async def test_every_json_reply_is_one_line_ended_by_a_newline(gateway, http, unique):
    """So replies printed by curl one after another read one per line."""
    replies = []
    for method, path, body in [
        ("POST", "/task", {"task_name": "add", "args": [1, 2]}),
        ("POST", "/task", {"task_name": "no-such-task"}),
        ("GET", f"/task/{unique}", None),
        ("GET", "/healthz", None),
        ("GET", "/no/such/route", None),
    ]:
        async with http.request(method, url_of(gateway, path), json=body) as response:
            replies.append(await response.text())

    assert all(reply.endswith("}\n") and reply.count("\n") == 1 for reply in replies), replies


async def test_get_task_of_an_id_never_issued_is_not_found(gateway, http, unique):
    """Celery says PENDING for any id; the gateway knows which ones it issued (a difference
    from Stirfried 0.7.0)."""
    async with http.get(url_of(gateway, f"/task/no-such-task-{unique}")) as response:
        assert response.status == 404
        body = await response.json()
    assert body["status"] == "failed"
    assert f"no task with id 'no-such-task-{unique}'" in body["data"]


async def test_get_failed_task_hides_the_error_without_error_info(gateway, http):
    _, body = await post_task(http, gateway, {"task_name": "fail", "args": ["secret detail"]})

    info = await wait_for_state(http, gateway, body["data"])

    assert info == {"id": body["data"], "state": "FAILURE", "result": None}


async def test_get_failed_task_shows_the_error_with_error_info(start_gateway, http):
    gateway = await start_gateway(stirfried_error_info=True)
    _, body = await post_task(http, gateway, {"task_name": "fail", "args": ["shown detail"]})

    info = await wait_for_state(http, gateway, body["data"])

    assert info["state"] == "FAILURE"
    assert info["result"] == "ValueError: shown detail"


async def test_delete_task_succeeds_for_an_unknown_id(gateway, http, unique):
    async with http.delete(url_of(gateway, f"/task/no-such-task-{unique}")) as response:
        assert response.status == 200
        assert await response.json() == {"status": "success", "data": f"no-such-task-{unique}"}


async def test_revoking_a_queued_task_prevents_its_run(gateway, http):
    # Occupy all four worker processes, so the next task waits in the queue.
    blockers = [
        (await post_task(http, gateway, {"task_name": "sleep", "args": [1.5]}))[1]["data"] for _ in range(4)
    ]
    _, queued = await post_task(http, gateway, {"task_name": "add", "args": [1, 1]})

    async with http.delete(url_of(gateway, f"/task/{queued['data']}")) as response:
        assert response.status == 200
    for blocker in blockers:
        assert (await wait_for_state(http, gateway, blocker))["state"] == "SUCCESS"

    info = await wait_for_state(http, gateway, queued["data"])
    assert info["state"] == "REVOKED"


async def test_invalid_json_is_a_400_naming_the_problem(gateway, http):
    async with http.post(url_of(gateway, "/task"), data=b"{not json", headers=JSON) as response:
        body = await response.json()
    assert response.status == 400
    assert body["status"] == "failed"
    assert "not valid JSON" in body["data"]


async def test_task_object_errors_are_400_naming_the_field(gateway, http):
    cases = {
        "[]": "must be an object",
        '{"args": []}': "'task_name' is required",
        '{"task_name": "add", "args": {}}': "'args' must be an array",
        '{"task_name": "add", "kwargs": []}': "'kwargs' must be an object",
        '{"task_name": "add", "chain": [{"task_name": "add", "chain": []}]}': "cannot have a 'chain'",
        '{"task_name": "add", "colour": "red"}': "unknown field 'colour'",
        '{"task_name": "add", "room": 5}': "'room' must be",
    }
    for body, message in cases.items():
        async with http.post(url_of(gateway, "/task"), data=body, headers=JSON) as response:
            reply = await response.json()
        assert response.status == 400, body
        assert reply["status"] == "failed" and message in reply["data"], (body, reply)


async def test_task_outside_the_allowlist_is_forbidden(start_gateway, http):
    gateway = await start_gateway(stirfried_available_tasks=["add"])

    status, body = await post_task(http, gateway, {"task_name": "fail", "args": ["x"]})
    allowed_status, _ = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})

    assert status == 403
    assert body == {"status": "failed", "data": "task 'fail' is not available"}
    assert allowed_status == 201


async def test_chained_task_outside_the_allowlist_is_forbidden(start_gateway, http):
    gateway = await start_gateway(stirfried_available_tasks=["add"])

    status, body = await post_task(
        http, gateway, {"task_name": "add", "args": [1, 2], "chain": [{"task_name": "sleep"}]}
    )

    assert status == 403
    assert "'sleep'" in body["data"]


async def test_unreachable_broker_is_a_503_within_the_timeout(start_gateway, http):
    gateway = await start_gateway(broker_url="redis://127.0.0.1:9/0", stirfried_broker_timeout=2.0)

    started = time.monotonic()
    status, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})

    assert status == 503
    assert body["status"] == "failed" and "publish" in body["data"]
    assert time.monotonic() - started < 4.0


async def test_unknown_path_is_a_json_404(gateway, http):
    async with http.get(url_of(gateway, "/nowhere")) as response:
        assert response.status == 404
        assert (await response.json())["status"] == "failed"


async def test_oversized_body_is_a_json_413(gateway, http):
    big = io.BytesIO(b"x" * (2 * 1024 * 1024))
    async with http.post(url_of(gateway, "/task"), data=big, headers=JSON) as response:
        assert response.status == 413
        assert (await response.json())["status"] == "failed"
