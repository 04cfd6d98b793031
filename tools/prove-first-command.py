#!/usr/bin/env python3
"""Prove the README's first command as a new user meets it, on a fresh clone.

    python3 tools/prove-first-command.py [--cold] [--port N] [--keep]

1. ``git clone`` this repository's HEAD into a temporary directory.
2. Run the README's first command (the ``sh`` block after ``<!-- first-command``)
   *as written*, with ``sh -c`` in a session of its own: it creates a fresh venv
   and installs ``.[dev]``, without test or lint extras, so nothing works only
   because a test tool happens to be installed.
3. Run the README's curl example until it prints ``SUCCESS`` with result 5 (the
   example worker starts a few seconds after the gateway), and report the time
   from the first command to that served task.
4. Worker library alone: a second fresh venv with ``pip install <clone>`` (no
   extras) runs ``celery -A tasks worker`` on the README's ``tasks.py`` against
   the gateway's embedded Valkey (its Redis broker); a task scheduled through the
   gateway streams its events back over SSE.
5. Ctrl-C: SIGINT to the command's process group; it must exit, and no process
   it started (Valkey, Celery) may be left.
6. Your own tasks: the README's ``--worker tasks`` command, in the same clone,
   serves ``tasks.resize`` through its curl example; Ctrl-C again, nothing left.

``--cold`` runs pip without its cache (``PIP_NO_CACHE_DIR``), ``--port`` appends
``--port N`` to the commands and rewrites the examples' URL (for machines where
8000 is taken; CI runs them as written). Needs git, curl and Python 3.11+ as
``python3``. Exit status 0 when everything held.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
README_URL = "http://127.0.0.1:8000"
INSTALL_TIMEOUT = 900.0
SERVE_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


class ProofFailed(Exception):
    pass


def say(message: str) -> None:
    print(f"== {message}", flush=True)


def readme_block(readme: str, marker: str) -> str:
    """The first fenced block after ``marker``."""
    start = readme.index(marker)
    match = re.compile(r"```\w+\n(.*?)```", re.DOTALL).search(readme, start)
    if match is None:
        raise ProofFailed(f"README.md: no code block after {marker!r}")
    return match.group(1).strip()


def clean_environment(cold: bool) -> dict[str, str]:
    """The caller's environment without an active virtualenv, as a new user's shell."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    venv = environment.pop("VIRTUAL_ENV", None)
    if venv:
        environment["PATH"] = os.pathsep.join(
            part for part in environment["PATH"].split(os.pathsep) if not part.startswith(venv)
        )
    for key in list(environment):
        if key.startswith("STIRFRIED_"):
            del environment[key]
    if cold:
        environment["PIP_NO_CACHE_DIR"] = "1"
    return environment


def processes_of(session: int, path: Path) -> list[tuple[int, str]]:
    """Live processes of ``session``, or running anything under ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, process_session = fields[0], int(fields[3])
        if state == "Z":
            continue
        if process_session == session or str(path) in command:
            found.append((int(entry.name), command.strip()))
    return found


class Command:
    """A shell command in a session of its own, as a terminal would run it."""

    def __init__(self, command: str, cwd: Path, environment: dict[str, str], log: Path) -> None:
        self.command, self.cwd, self.log = command, cwd, log
        self._log_file = open(log, "wb")  # closed by ctrl_c() or kill()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["sh", "-c", command],
            cwd=cwd,
            env=environment,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise ProofFailed(f"the command exited with status {self.process.returncode}:\n{self.tail()}")

    def ctrl_c(self, root: Path) -> float:
        """SIGINT to the process group, as Ctrl-C; returns the seconds it took to stop."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ProofFailed(f"still running {STOP_TIMEOUT:g} s after Ctrl-C:\n{self.tail()}") from None
        stopped = time.monotonic() - started
        deadline = time.monotonic() + 10
        while (left := processes_of(self.process.pid, root)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if left:
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise ProofFailed("left running after Ctrl-C:\n" + "\n".join(f"{p} {c}" for p, c in left))
        self._log_file.close()
        return stopped

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log_file.close()


def run_example(script: str, cwd: Path, environment: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60
    )
    return result.stdout + result.stderr


def wait_for_success(
    command: Command, script: str, expected: str, cwd: Path, environment: dict[str, str], timeout: float
) -> str:
    """Run ``script`` until its output holds ``expected``; the command must keep running."""
    deadline = time.monotonic() + timeout
    output = ""
    serving = False
    while time.monotonic() < deadline:
        command.check_running()
        if "Stirfried gateway on" in command.output():
            if not serving:
                serving = True
                say(f"the gateway serves, {time.monotonic() - command.started:.1f} s after the command")
            output = run_example(script, cwd, environment)
            if expected in output:
                return output
        time.sleep(1)
    raise ProofFailed(f"no {expected!r} within {timeout:g} s; last output:\n{output}\n{command.tail()}")


def embedded_valkey_url(command: Command) -> str:
    match = re.search(r"embedded Valkey server at (redis://\S+)", command.output())
    if match is None:
        raise ProofFailed(f"the gateway logged no embedded Valkey URL:\n{command.tail()}")
    return match.group(1)


def prove_worker_library(
    root: Path, clone: Path, readme: str, gateway: Command, url: str, environment: dict[str, str]
) -> None:
    """A venv with only ``pip install <clone>`` runs a user's worker on the Redis broker."""
    venv = root / "worker-venv"
    say("worker library alone: python3 -m venv && pip install <clone> (no extras)")
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, env=environment)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(clone)], check=True, env=environment)
    refusal = subprocess.run(
        [str(venv / "bin" / "stirfried-server"), "--config", "x.yaml"],
        capture_output=True, text=True, env=environment, timeout=60,
    )  # fmt: skip
    if refusal.returncode != 1 or "server` extra" not in refusal.stderr:
        raise ProofFailed(f"stirfried-server without the server extra: {refusal.stderr!r}")
    tasks = root / "worker-tasks"
    tasks.mkdir()
    (tasks / "tasks.py").write_text(readme_block(readme, "<!-- example: tasks.py -->") + "\n")
    valkey = embedded_valkey_url(gateway)
    worker_environment = {
        **environment,
        "STIRFRIED_CONFIG": str(clone / "config" / "development.yaml"),
        "STIRFRIED_BROKER_URL": valkey,
        "STIRFRIED_RESULT_BACKEND": valkey,
        "STIRFRIED_REDIS_URL": valkey,
    }
    worker = Command(
        f"exec {venv}/bin/celery -A tasks worker --concurrency=1 --loglevel=INFO --hostname=proof@%h",
        tasks,
        worker_environment,
        root / "worker.log",
    )
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        while "ready." not in worker.output():
            worker.check_running()
            if time.monotonic() > deadline:
                raise ProofFailed(f"the worker did not start:\n{worker.tail()}")
            time.sleep(0.5)
        request = urllib.request.Request(
            f"{url}/task",
            data=json.dumps({"task_name": "tasks.resize", "args": [7]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
        events = f"{url}/task/{body['data']}/events?token={body['token']}"
        with urllib.request.urlopen(events, timeout=60) as stream:
            text = stream.read().decode()
        names = re.findall(r"^event: (\w+)$", text, flags=re.MULTILINE)
        if names.count("on_progress") != 10 or names[-1] != "on_return" or '"retval": 7' not in text:
            raise ProofFailed(f"SSE of tasks.resize from the worker-library venv:\n{text}")
        say(f"worker library alone: tasks.resize relayed over SSE ({len(names)} events)")
        worker.ctrl_c(root / "worker-venv")
    finally:
        worker.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="pip without its cache (--no-cache-dir)")
    parser.add_argument("--port", type=int, help="append --port N to the commands (default: as written)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--skip-worker-library", action="store_true", help="skip step 4")
    arguments = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="stirfried-first-command-"))
    clone = root / "stirfried"
    environment = clean_environment(arguments.cold)
    commands: list[Command] = []
    try:
        say(f"git clone {REPOSITORY} (HEAD) into {clone}")
        subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True)
        readme = (clone / "README.md").read_text(encoding="utf-8")
        first = readme_block(readme, "<!-- first-command")
        curl = readme_block(readme, "<!-- example: curl -->")
        own_worker = readme_block(readme, "<!-- example: own-worker -->")
        own_curl = readme_block(readme, "<!-- example: own-curl -->")
        url = README_URL
        if arguments.port:
            url = f"http://127.0.0.1:{arguments.port}"
            first, own_worker = (f"{first} --port {arguments.port}", f"{own_worker} --port {arguments.port}")
            curl, own_curl = curl.replace(README_URL, url), own_curl.replace(README_URL, url)

        say(f"the README's first command{' (pip cache off)' if arguments.cold else ''}: {first}")
        command = Command(first, clone, environment, root / "first-command.log")
        commands.append(command)
        output = wait_for_success(
            command, curl, '"state": "SUCCESS", "result": 5}', clone, environment, INSTALL_TIMEOUT
        )
        served = time.monotonic() - command.started
        say(f"the curl example served SUCCESS, result 5, {served:.1f} s after the first command")
        print(output.strip())
        tools = subprocess.run(
            [str(clone / ".venv" / "bin" / "python"), "-c", "import pytest"], capture_output=True
        )
        if tools.returncode == 0:
            raise ProofFailed("pytest is importable in the first command's venv: it is not a clean venv")
        if not arguments.skip_worker_library:
            prove_worker_library(root, clone, readme, command, url, environment)
        stopped = command.ctrl_c(root)
        say(f"Ctrl-C: stopped in {stopped:.1f} s; no Valkey or Celery process left")

        (clone / "tasks.py").write_text(readme_block(readme, "<!-- example: tasks.py -->") + "\n")
        say(f"your own tasks: {own_worker}")
        own = Command(own_worker, clone, environment, root / "own-worker.log")
        commands.append(own)
        output = wait_for_success(
            own, own_curl, '"state": "SUCCESS", "result": 42}', clone, environment, SERVE_TIMEOUT
        )
        say(f"tasks.resize served {time.monotonic() - own.started:.1f} s after the command")
        print(output.strip())
        own.ctrl_c(root)
        say("Ctrl-C: nothing left. The first command holds.")
        print(f"FIRST_COMMAND_SECONDS={served:.1f}")
        return 0
    except (ProofFailed, subprocess.CalledProcessError, OSError, ValueError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        for command in commands:
            command.kill()
        if arguments.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
