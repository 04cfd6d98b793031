"""A development gateway that is SIGKILLed (or OOM-killed) takes its Valkey and workers with it.

Otherwise they would run on with no parent, and the next run would start a
second Valkey on the data directory the orphan still holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest

from stirfried.server.development.parent_death import die_with_gateway
from tests import services
from tests.helpers import post_task, wait_for_state
from tests.test_cli import DEVELOPMENT_CONFIG, _kill, _start, _stop, _wait_until_serving

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# How long the children may take to notice: Valkey and Celery's warm shutdown take about a second.
ORPHAN_TIMEOUT = 15


def _kill_survivors(processes: list[psutil.Process]) -> None:
    """Whatever the assertions said, leave nothing running."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=5)


async def test_killed_gateway_leaves_no_valkey_or_worker_behind(http, tmp_path):
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    arguments = ("--config", DEVELOPMENT_CONFIG, "--example-worker", "--port", str(port))
    process = _start(*arguments, cwd=tmp_path)
    children: list[psutil.Process] = []
    try:
        await _wait_until_serving(url, process)
        status, body = await post_task(http, url, {"task_name": "add", "args": [2, 3]})
        assert status == 201
        assert (await wait_for_state(http, url, body["data"], timeout=60))["result"] == 5

        children = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "valkey-server" in names and "celery" in names, names
        # The worker's pool (--concurrency=2) is there too, its processes the worker's children.
        assert len(children) >= 4, names

        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)
        _, still_running = await asyncio.to_thread(psutil.wait_procs, children, ORPHAN_TIMEOUT)
        assert still_running == [], [" ".join(child.cmdline()) for child in still_running]
    finally:
        _kill(process)
        _kill_survivors(children)

    # The same command in the same directory starts again, on the data the killed one left.
    process = _start(*arguments, cwd=tmp_path)
    try:
        await _wait_until_serving(url, process)
        assert (await wait_for_state(http, url, body["data"], timeout=0))["result"] == 5
        await _stop(process, signal.SIGTERM)
    finally:
        _kill(process)


def test_children_ask_for_sigterm_when_the_gateway_dies():
    probe = "import ctypes; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s)); print(s.value)"
    child = subprocess.run([sys.executable, "-c", probe], preexec_fn=die_with_gateway(), capture_output=True)
    assert int(child.stdout) == signal.SIGTERM


def test_a_child_whose_gateway_already_died_exits_at_once():
    """The signal comes only for a parent alive when it was asked for: a child that finds another
    parent (here: a process forked from the gateway) exits instead of running unwatched."""
    script = textwrap.dedent("""
        import os
        from stirfried.server.development.parent_death import die_with_gateway
        preexec = die_with_gateway()
        child = os.fork()
        if child == 0:  # the gateway's own child passes
            preexec()
            grandchild = os.fork()
            if grandchild == 0:  # another's child does not
                preexec()
                os._exit(0)
            os._exit(os.waitstatus_to_exitcode(os.waitpid(grandchild, 0)[1]) + 10)
        print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "11"


def test_children_are_not_started_from_a_thread_that_may_end_first():
    errors: list[BaseException] = []

    def spawn() -> None:
        try:
            die_with_gateway()
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=spawn)
    thread.start()
    thread.join()
    assert len(errors) == 1
