"""Parsing the task object."""

from __future__ import annotations

import pytest

from stirfried.server.caller import ANONYMOUS
from stirfried.server.errors import InvalidRequest, TaskNotAllowed
from stirfried.server.scheduling import check_allowed
from stirfried.server.task_request import parse_task_id, parse_task_request


def test_full_task_object_parses():
    request = parse_task_request(
        {"task_name": "add", "args": [1], "kwargs": {"y": 2}, "room": "r", "chain": [{"task_name": "b"}]}
    )
    assert request.call.name == "add" and request.call.args == (1,) and request.call.kwargs == {"y": 2}
    assert request.room == "r" and [call.name for call in request.chain] == ["b"]


@pytest.mark.parametrize(
    "data",
    [None, 5, "add", [], {}, {"task_name": 5}, {"task_name": " "}, {"task_name": "x" * 300},
     {"task_name": "a", "chain": {}}, {"task_name": "a", "chain": [5]}, {"task_name": "a", "room": ""}],
)  # fmt: skip
def test_malformed_task_objects_are_invalid(data):
    with pytest.raises(InvalidRequest):
        parse_task_request(data)


def test_allowlist_covers_chained_tasks():
    request = parse_task_request({"task_name": "a", "chain": [{"task_name": "b"}]})
    check_allowed(request, (), ANONYMOUS)
    with pytest.raises(TaskNotAllowed, match="'b'"):
        check_allowed(request, ("a",), ANONYMOUS)


@pytest.mark.parametrize("value", [None, "", 5, "x" * 256, "line\nbreak"])
def test_bad_task_ids_are_invalid(value):
    with pytest.raises(InvalidRequest):
        parse_task_id(value)
