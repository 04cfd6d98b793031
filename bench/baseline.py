"""A virtual environment with a released Stirfried (``--against stirfried==0.7.0``).

0.7.0's own pins (celery<5, python-socketio<5, aioredis<2, uvicorn 0.11) no
longer install on Python 3.11, so it gets the Celery, python-socketio and
redis-py versions this checkout runs on, and current Starlette and
``uvicorn[standard]`` (uvloop, httptools, websockets: its fastest set-up).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

SHARED_RUNTIME = ("celery", "python-socketio", "python-engineio", "redis", "kombu", "pyyaml")
SERVER_RUNTIME = ("starlette", "uvicorn[standard]", "packaging")


def cache_directory() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stirfried-bench"


def baseline_python(spec: str) -> str:
    """The interpreter of a venv holding ``spec`` (created once, then reused)."""
    directory = cache_directory() / re.sub(r"[^A-Za-z0-9.=_-]", "_", spec)
    python = directory / "bin" / "python"
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in SHARED_RUNTIME]
    wanted = "\n".join([spec, *pins, *SERVER_RUNTIME])
    marker = directory / "installed.txt"
    if marker.exists() and marker.read_text() == wanted:
        return str(python)
    print(f"installing {spec} into {directory} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(directory)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", spec], check=True)
    subprocess.run([*pip, *pins, *SERVER_RUNTIME], check=True)
    marker.write_text(wanted)
    return str(python)
