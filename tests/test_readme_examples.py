"""The README's curl and Python examples, run as written against the README's run command."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from stirfried.client import SyncStirfriedClient
from tests import services

README = (services.REPOSITORY / "README.md").read_text(encoding="utf-8")
README_URL = "http://127.0.0.1:8000"


def examples(kind: str) -> list[str]:
    """The code blocks marked ``<!-- example: KIND -->`` in the README."""
    pattern = rf"<!-- example: {kind} -->\n```\w+\n(.*?)```"
    return re.findall(pattern, README, flags=re.DOTALL)


@pytest.fixture(scope="module")
def run_command_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``stirfried-server --config config/development.yaml --example-worker`` on a free port.

    From a directory of its own: the embedded Valkey keeps its data in ``.stirfried/``
    there, not in the checkout where a developer's own run command may be running.
    """
    port = services.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stirfried.server", "--config",
         str(services.REPOSITORY / "config" / "development.yaml"), "--example-worker", "--port", str(port)],
        cwd=tmp_path_factory.mktemp("run-command"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "run command did not start"
                time.sleep(0.2)
        with SyncStirfriedClient(url) as client:  # the example worker is up once it announced its tasks
            while "add" not in [task.name for task in client.tasks()]:
                assert time.monotonic() < deadline, "the example worker did not announce its tasks"
                time.sleep(0.2)
            client.run("add", 0, 0, timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def test_readme_has_the_examples():
    assert len(examples("curl")) == 1
    assert len(examples("sse")) == 1
    assert len(examples("python")) == 5


def test_curl_example_runs_as_written(run_command_stack):
    script = examples("curl")[0].replace(README_URL, run_command_stack)

    result = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert '"state": "SUCCESS", "result": 5}' in result.stdout
    assert '{"status": "success", "data": "' in result.stdout


def test_sse_example_runs_as_written(run_command_stack):
    script = examples("sse")[0].replace(README_URL, run_command_stack)

    result = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    # ids are <epoch>:<event_id>; the README's "Last-Event-ID: 2" (no epoch) still resumes.
    ids = [int(line.rpartition(":")[2]) for line in result.stdout.splitlines() if line.startswith("id: ")]
    # The development config has celery_events on: received, started, 3 x progress, success,
    # return; the second stream replays everything after event 2.
    assert ids == [*range(1, 8), *range(3, 8)]
    assert result.stdout.count("event: on_return") == 2
    assert '"retval": 3' in result.stdout


@pytest.mark.parametrize("index", range(5))
def test_python_example_runs_as_written(run_command_stack, index):
    script = examples("python")[index].replace(README_URL, run_command_stack)

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)

    assert result.returncode == 0, result.stderr
    expected = [
        ["5\n", "5/5: step 5 of 5", "failed: ValueError: disk full"],
        ["state='SUCCESS', result=5", "Progress(", "3\n"],
        [
            "add (x: float, y: float) - Add two numbers.",
            "5\n5\n",
            "(MyTask(id='",
            "name='add', state='SUCCESS'",
        ],
        ["5/5: step 5 of 5", "SUCCESS 5"],
        ["Progress(", "info='step 3 of 3'", "\n3\n"],
    ][index]
    for text in expected:
        assert text in result.stdout, result.stdout
