"""The Python client's count of a task's events: each once, and a new log's from its start."""

from __future__ import annotations

from stirfried import protocol
from stirfried.client_watch import TaskWatch


def progress(event_id: int, epoch: str, current: int) -> dict[str, object]:
    return {
        "event_id": event_id, "epoch": epoch, "current": current, "total": 9, "info": None,
        "task_id": "t", "task_name": "x",
    }  # fmt: skip


async def test_a_new_epoch_restarts_the_count_of_events_seen():
    seen: list[int] = []
    watch = TaskWatch(lambda update: seen.append(update.current), token="tok")

    for event in (progress(1, "aa", 1), progress(2, "aa", 2), progress(2, "aa", 2)):
        await watch.handle(protocol.ON_PROGRESS, event)
    # Redis lost the log: the task's next event is number 1 of a new one.
    await watch.handle(protocol.ON_PROGRESS, progress(1, "bb", 3))
    await watch.handle(protocol.ON_PROGRESS, progress(1, "bb", 3))

    assert seen == [1, 2, 3]
    assert (watch.last_event_id, watch.epoch) == (1, "bb")
