"""Terminate (issue 15): stop a running task, where the config and the token allow it."""

from __future__ import annotations

import time

from stirfried.server.caller import Authenticator
from tests.helpers import url_of

SECRET = "terminate-test-secret-0123456789abcdef"


async def test_terminate_is_refused_unless_the_config_allows_it(gateway, http, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "sleep", "args": [0.1]})

    reply = await client.call("revoke_task", {"task_id": task_id, "terminate": True})
    assert reply == {
        "status": "failed",
        "data": "terminating tasks is not available on this gateway (stirfried_terminate)",
    }
    async with http.delete(url_of(gateway, f"/task/{task_id}?terminate=true")) as response:
        assert response.status == 403


async def test_terminate_stops_a_running_task_and_its_followers_see_it(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_terminate=True)
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "pid_then_sleep", "args": [60]})
    await client.wait_for_event("on_progress", task_id)  # running on a worker
    started = time.monotonic()

    reply = await client.call("revoke_task", {"task_id": task_id, "terminate": True, "signal": "SIGKILL"})

    assert reply == {"status": "success", "data": task_id}
    revoked = await client.wait_for_event("on_revoked", task_id, timeout=15)
    assert revoked["terminated"] is True
    assert time.monotonic() - started < 10
    async with http.get(url_of(gateway, f"/task/{task_id}")) as response:
        assert (await response.json())["state"] == "REVOKED"


async def test_terminate_over_http_needs_the_tokens_terminate_claim(start_gateway, http, connect):
    gateway = await start_gateway(
        stirfried_terminate=True, stirfried_anonymous=False, stirfried_auth_secret=SECRET
    )
    minter = Authenticator(SECRET, anonymous=False)
    plain = minter.mint("op", ["pid_then_sleep"])
    client = await connect(gateway, auth={"token": plain})
    reply = await client.call("send_task", {"task_name": "pid_then_sleep", "args": [60]})
    task_id, token = reply["data"], reply["token"]
    await client.wait_for_event("on_progress", task_id)

    async with http.delete(
        url_of(gateway, f"/task/{task_id}?terminate=true&token={token}"),
        headers={"Authorization": f"Bearer {plain}"},
    ) as response:
        assert (response.status, (await response.json())["data"]) == (
            403,
            "the token does not allow terminating tasks",
        )
    allowed = minter.mint("op", ["pid_then_sleep"], terminate=True)
    async with http.delete(
        url_of(gateway, f"/task/{task_id}?terminate=true&signal=SIGTERM&token={token}"),
        headers={"Authorization": f"Bearer {allowed}"},
    ) as response:
        assert response.status == 200

    assert (await client.wait_for_event("on_revoked", task_id, timeout=15))["terminated"] is True


async def test_bad_terminate_requests_are_refused(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_terminate=True)
    async with http.delete(url_of(gateway, "/task/x?terminate=maybe")) as response:
        assert (response.status, (await response.json())["data"]) == (
            400,
            "'terminate' must be true or false",
        )
    async with http.delete(url_of(gateway, "/task/x?terminate=true&signal=SIGSTOP")) as response:
        assert response.status == 400
    client = await connect(gateway)
    reply = await client.call("revoke_task", {"task_id": "x", "signal": "SIGKILL"})
    assert reply == {"status": "failed", "data": "'signal' goes with 'terminate': true"}
