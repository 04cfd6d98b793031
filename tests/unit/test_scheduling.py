"""Rooms, injected kwargs and chain order, decided before anything is published."""

from __future__ import annotations

from multidict import CIMultiDict

from stirfried.server.caller import Authenticator, Callers
from stirfried.server.scheduling import plan_publish, resolve_room
from stirfried.server.task_request import parse_task_request
from stirfried.settings import StirfriedSettings, build_settings

DEFAULTS = StirfriedSettings()
CUSTOM = build_settings({"custom_rooms": True})


def test_room_defaults_to_the_schedulers_room():
    assert resolve_room(None, "sid-1", DEFAULTS) == "sid-1"


def test_requested_room_needs_custom_rooms():
    assert resolve_room("elsewhere", "sid-1", DEFAULTS) == "sid-1"
    assert resolve_room("elsewhere", "sid-1", CUSTOM) == "elsewhere"


def test_sentinel_room_is_always_honoured():
    assert resolve_room("NO_EMIT", "sid-1", DEFAULTS) == "NO_EMIT"


def test_header_mapping_is_case_insensitive_and_strips_spoofed_values():
    settings = build_settings({"header_task_map": {"mail": {"X-User": "user"}}})
    callers = Callers(Authenticator("", anonymous=True), (), settings.header_task_map)
    headers = callers.mapped_headers(CIMultiDict({"x-user": "alice", "Cookie": "secret"}))
    assert headers == {"x-user": "alice"}

    request = parse_task_request({"task_name": "mail", "kwargs": {"user": "mallory", "room": "x"}})
    with_header = plan_publish(request, "sid", headers, settings).main.kwargs
    without_header = plan_publish(request, "sid", {}, settings).main.kwargs

    assert with_header == {"user": "alice", "room": "sid"}
    assert without_header == {"room": "sid"}


def test_chain_runs_in_reverse_array_order_after_the_main_task():
    request = parse_task_request({"task_name": "main", "chain": [{"task_name": "b"}, {"task_name": "c"}]})
    plan = plan_publish(request, "sid", {}, DEFAULTS)
    assert [plan.main.name, *(task.name for task in plan.followers)] == ["main", "c", "b"]
    assert all(task.kwargs["room"] == "sid" for task in (plan.main, *plan.followers))
    assert len({plan.main.task_id, *(task.task_id for task in plan.followers)}) == 3


def test_task_name_labels_are_bounded():
    from stirfried.server.metrics import OTHER_TASK_NAME, TaskNameLabels

    open_labels = TaskNameLabels((), limit=2)
    assert [open_labels(name) for name in ("a", "b", "c", "a")] == ["a", "b", OTHER_TASK_NAME, "a"]
    allowlisted = TaskNameLabels(("add",))
    assert [allowlisted(name) for name in ("add", "anything")] == ["add", OTHER_TASK_NAME]
