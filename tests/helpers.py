"""Small async helpers shared by the tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from stirfried import protocol

TERMINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}


def url_of(server: TestServer | str, path: str) -> str:
    base = server if isinstance(server, str) else str(server.make_url("/")).rstrip("/")
    return base.rstrip("/") + path


async def post_task(
    http: ClientSession, server: TestServer | str, task: Any, **kwargs: Any
) -> tuple[int, Any]:
    async with http.post(url_of(server, "/task"), json=task, **kwargs) as response:
        return response.status, await response.json()


async def wait_for_state(
    http: ClientSession, server: TestServer | str, task_id: str, timeout: float = 20
) -> dict[str, Any]:
    """Poll ``GET /task/{id}`` until the task reaches a terminal state."""
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(url_of(server, f"/task/{task_id}")) as response:
            info: dict[str, Any] = await response.json()
        if info.get("state") in TERMINAL_STATES or time.monotonic() > deadline:
            return info
        await asyncio.sleep(0.05)


def seed_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as Stirfried 0.7.0 sent it: checks and strips ``event_id``, ``epoch`` and ``timestamp``."""
    assert isinstance(payload.get("event_id"), int) and payload["event_id"] >= 1, payload
    assert abs(payload.get("timestamp", 0) - time.time()) < 120, payload
    assert protocol.is_epoch(payload.get("epoch")), payload
    added = ("event_id", "epoch", "timestamp")
    return {key: value for key, value in payload.items() if key not in added}


def metric(text: str, line_start: str) -> float:
    """The value of the first sample line starting with ``line_start``."""
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")
