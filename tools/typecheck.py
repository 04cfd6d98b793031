"""Run mypy on the code as it is installed: ``stirfried`` (workers/) with ``stirfried.server`` (server/).

setup.cfg maps two folders into one package, which mypy cannot see from the
source tree: run on ``server`` and ``workers`` directly, every ``stirfried.*``
import would be ``Any`` and no call between modules would be checked. So this
builds the installed layout from symlinks in a temporary folder and checks
``-p stirfried -p bench -p tests`` there (tests with the relaxed rules of
pyproject.toml: their bodies are checked, their signatures need no annotations).
Arguments are passed on to mypy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as name:
        tree = Path(name)
        package = tree / "stirfried"
        package.mkdir()
        for source in (REPOSITORY / "workers").iterdir():
            if source.suffix == ".py" or source.name == "py.typed":
                (package / source.name).symlink_to(source)
        (package / "server").symlink_to(REPOSITORY / "server")
        (tree / "bench").symlink_to(REPOSITORY / "bench")
        (tree / "tests").symlink_to(REPOSITORY / "tests")
        command = [sys.executable, "-m", "mypy", "--config-file", str(REPOSITORY / "pyproject.toml"),
                   "-p", "stirfried", "-p", "bench", "-p", "tests", *sys.argv[1:]]  # fmt: skip
        environment = {**os.environ, "MYPYPATH": str(tree)}
        return subprocess.run(command, cwd=tree, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
