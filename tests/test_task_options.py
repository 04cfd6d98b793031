"""Scheduling options (issue 15): countdown, eta, expires, priority and queue reach Celery,
each only where the config (and a token) allows it."""

from __future__ import annotations

import datetime
import time
from typing import Any

from stirfried.server.caller import Authenticator
from tests.conftest import QUIET_QUEUE, VERBOSE_QUEUE
from tests.helpers import post_task, url_of, wait_for_state

ALL_OPTIONS = ["countdown", "eta", "expires", "priority", "queue"]
SECRET = "options-test-secret-0123456789abcdef"


def in_seconds(seconds: float) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)).isoformat()


async def test_options_are_refused_unless_the_config_allows_them(gateway, http, connect):
    status, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2], "countdown": 1})
    assert (status, body["data"]) == (
        403,
        "option 'countdown' is not available on this gateway (stirfried_task_options)",
    )

    client = await connect(gateway)
    reply = await client.call(
        "send_task", {"task_name": "add", "args": [1, 2], "chain": [{"task_name": "add", "priority": 3}]}
    )
    assert reply == {
        "status": "failed",
        "data": "option 'priority' is not available on this gateway (stirfried_task_options)",
    }


async def test_a_countdown_delays_the_task_and_it_stays_pending_meanwhile(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_task_options=["countdown"])
    client = await connect(gateway)
    scheduled_at = time.time()

    task_id = await client.send_task({"task_name": "add", "args": [2, 3], "countdown": 2})

    async with http.get(url_of(gateway, f"/task/{task_id}")) as response:
        # Issued and queued: PENDING (an id never issued would be 404).
        assert (response.status, (await response.json())["state"]) == (200, "PENDING")
    success = await client.wait_for_event("on_success", task_id, timeout=20)
    assert success["retval"] == 5
    assert success["timestamp"] - scheduled_at >= 1.9


async def test_eta_priority_and_expires_reach_the_worker(start_gateway, http):
    gateway = await start_gateway(stirfried_task_options=ALL_OPTIONS)
    eta, expires = in_seconds(1), in_seconds(600)

    status, body = await post_task(
        http, gateway, {"task_name": "report_request", "eta": eta, "expires": expires, "priority": 7}
    )
    assert status == 201, body
    info = await wait_for_state(http, gateway, body["data"])

    assert info["state"] == "SUCCESS"
    request = info["result"]
    assert request["priority"] == 7
    assert datetime.datetime.fromisoformat(request["eta"]) == datetime.datetime.fromisoformat(eta)
    assert datetime.datetime.fromisoformat(request["expires"]) == datetime.datetime.fromisoformat(expires)


async def test_an_expired_task_does_not_run(start_gateway, connect):
    gateway = await start_gateway(stirfried_task_options=["countdown", "expires"])
    client = await connect(gateway)

    task_id = await client.send_task(
        {"task_name": "count_run", "args": ["expired"], "countdown": 2, "expires": 1}
    )

    revoked = await client.wait_for_event("on_revoked", task_id, timeout=20)
    assert revoked["expired"] is True
    assert [name for name, _ in client.events_for(task_id)] == ["on_revoked"]


async def test_a_queue_option_routes_the_task_to_the_workers_on_that_queue(start_gateway, http, connect):
    gateway = await start_gateway(
        stirfried_task_options=["queue"], stirfried_task_queues=[VERBOSE_QUEUE, "nobody-listens"]
    )
    client = await connect(gateway)

    # Only the workers on the verbose queue put error details in their events.
    task_id = await client.send_task({"task_name": "fail", "args": ["routed"], "queue": VERBOSE_QUEUE})
    failure = await client.wait_for_event("on_failure", task_id)
    assert "routed" in failure["einfo"]
    default = await client.send_task({"task_name": "fail", "args": ["not routed"]})
    assert "einfo" not in await client.wait_for_event("on_failure", default)

    status, body = await post_task(http, gateway, {"task_name": "add", "queue": QUIET_QUEUE})
    assert (status, body["data"]) == (403, f"queue '{QUIET_QUEUE}' is not one of stirfried_task_queues")
    status, body = await post_task(http, gateway, {"task_name": "add", "queue": "nobody-listens"})
    assert (status, body["data"]) == (404, "no live worker serves task 'add' on queue 'nobody-listens'")


async def test_a_task_the_gateways_routes_send_where_no_worker_listens_is_refused(start_gateway, http):
    gateway = await start_gateway(task_routes={"add": {"queue": "nobody-listens"}})

    status, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    routed_elsewhere, other = await post_task(http, gateway, {"task_name": "progress", "args": [1]})
    # A chained task is routed by the worker that sends it on, with the worker's routes.
    chained, chain = await post_task(
        http, gateway, {"task_name": "progress", "args": [1], "chain": [{"task_name": "add", "args": [2]}]}
    )

    # It waited in that queue forever before.
    assert status == 404 and body["data"].startswith(
        "no live worker serves task 'add' on queue 'nobody-listens', where this gateway sends it"
    )
    assert routed_elsewhere == 201, other
    assert chained == 201, chain


async def test_option_values_are_checked(start_gateway, http):
    gateway = await start_gateway(stirfried_task_options=ALL_OPTIONS, stirfried_max_task_delay=60)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"countdown": -1}, "'countdown' must be >= 0"),
        ({"countdown": "soon"}, "'countdown' must be a number of seconds"),
        ({"countdown": 61}, "'countdown' reaches more than 60 seconds ahead (stirfried_max_task_delay)"),
        ({"eta": in_seconds(3600)}, "'eta' reaches more than 60 seconds ahead (stirfried_max_task_delay)"),
        ({"eta": "tomorrow"}, "'eta' must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z"),
        ({"countdown": 1, "eta": in_seconds(1)}, "'countdown' and 'eta' cannot both be set"),
        ({"expires": 0}, "'expires' must be > 0"),
        ({"priority": 10}, "'priority' must be an integer from 0 to 9"),
        ({"priority": True}, "'priority' must be an integer from 0 to 9"),
    ]
    for options, message in cases:
        status, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2], **options})
        assert (status, body["data"]) == (400, message), options


async def test_a_token_must_name_the_options_it_may_set(start_gateway, http):
    gateway = await start_gateway(
        stirfried_anonymous=False,
        stirfried_auth_secret=SECRET,
        stirfried_task_options=["countdown", "priority"],
    )
    minter = Authenticator(SECRET, anonymous=False)
    task = {"task_name": "add", "args": [1, 2], "priority": 5}

    status, body = await post_task(
        http, gateway, task, headers={"Authorization": f"Bearer {minter.mint('a', ['add'])}"}
    )
    assert (status, body["data"]) == (403, "the token does not allow option 'priority'")
    allowed = minter.mint("a", ["add"], options=["priority"])
    status, body = await post_task(http, gateway, task, headers={"Authorization": f"Bearer {allowed}"})
    assert status == 201, body
