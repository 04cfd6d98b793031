"""The Python client's task object: Celery's options as the gateway reads them."""

from __future__ import annotations

import datetime

import pytest

from stirfried.client_types import check_session_key, new_session_key, task_object


def test_times_become_iso_8601_and_other_options_pass_unchanged():
    eta = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    task = task_object("add", [1], {"y": 2}, {"eta": eta, "expires": 30.0, "priority": 3, "queue": "fast"})

    assert task == {
        "task_name": "add", "args": [1], "kwargs": {"y": 2},
        "eta": "2030-01-02T03:04:05+00:00", "expires": 30.0, "priority": 3, "queue": "fast",
    }  # fmt: skip


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        task_object("add", [], {}, {"eta": datetime.datetime(2030, 1, 1)})


def test_new_session_keys_are_random_and_of_the_gateways_shape():
    keys = {check_session_key(new_session_key()) for _ in range(10)}
    assert len(keys) == 10
