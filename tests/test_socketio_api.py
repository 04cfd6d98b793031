"""The Socket.IO API's replies: task_info, revoke_task, and bad input."""

from __future__ import annotations

from stirfried import protocol


async def test_task_info_reports_success_with_result(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "add", "args": [4, 5]})
    await client.wait_for_event(protocol.ON_RETURN, task_id)

    assert await client.call("task_info", task_id) == {"id": task_id, "state": "SUCCESS", "result": 9}


async def test_task_info_reports_failure_and_unknown_ids(gateway, connect, unique):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "fail", "args": ["nope"]})
    await client.wait_for_event(protocol.ON_RETURN, task_id)

    assert await client.call("task_info", task_id) == {"id": task_id, "state": "FAILURE", "result": None}
    assert await client.call("task_info", f"unknown-id-{unique}") == {
        "status": "failed",
        "data": f"no task with id 'unknown-id-{unique}' (never issued, or its record has expired)",
    }


async def test_revoke_task_acknowledges_even_unknown_ids(gateway, connect, unique):
    client = await connect(gateway)

    assert await client.call("revoke_task", f"unknown-id-{unique}") == {
        "status": "success",
        "data": f"unknown-id-{unique}",
    }


async def test_invalid_payloads_get_a_failed_reply_and_the_server_keeps_serving(gateway, connect):
    client = await connect(gateway)
    bad_calls = [
        ("send_task", ("not an object",), "must be an object"),
        ("send_task", ({"task_name": ""},), "'task_name' is required"),
        ("send_task", ({"task_name": "add", "args": "1,2"},), "'args' must be an array"),
        ("send_task", (), "exactly one argument"),
        ("send_task", ({"task_name": "add"}, "extra"), "exactly one argument"),
        ("task_info", ({"id": 1},), "unknown field 'id' (allowed: task_id, token)"),
        ("task_info", (1,), "task id must be a non-empty string"),
        ("revoke_task", ("",), "task id must be a non-empty string"),
        ("no_such_event", ({},), "unknown event 'no_such_event'"),
    ]
    for event, args, message in bad_calls:
        reply = await client.call(event, *args)
        assert reply["status"] == "failed" and message in reply["data"], (event, args, reply)

    task_id = await client.send_task({"task_name": "add", "args": [1, 1]})
    assert (await client.wait_for_event(protocol.ON_SUCCESS, task_id))["retval"] == 2


async def test_send_task_outside_the_allowlist_fails(start_gateway, connect):
    gateway = await start_gateway(stirfried_available_tasks=["add"])
    client = await connect(gateway)

    reply = await client.call("send_task", {"task_name": "add", "chain": [{"task_name": "fail"}]})

    assert reply == {"status": "failed", "data": "task 'fail' is not available"}


async def test_send_task_with_the_broker_down_fails_within_the_timeout(start_gateway, connect):
    gateway = await start_gateway(broker_url="redis://127.0.0.1:9/0", stirfried_broker_timeout=2.0)
    client = await connect(gateway)

    reply = await client.call("send_task", {"task_name": "add", "args": [1, 2]}, timeout=4)

    assert reply["status"] == "failed" and "could not publish" in reply["data"]
