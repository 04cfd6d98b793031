"""The JavaScript client (js/) is released with the Python package: same version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import stirfried

REPOSITORY = Path(__file__).resolve().parents[2]


def test_js_package_version_is_the_python_package_version():
    python_version = stirfried.__version__  # PEP 440: 1.0.0.dev0 (setup.cfg reads it from there)
    js_version = json.loads((REPOSITORY / "js" / "package.json").read_text())[
        "version"
    ]  # semver: 1.0.0-dev.0
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(?:-(dev|alpha|beta|rc)\.(\d+))?", js_version)
    assert match, js_version
    release, stage, number = match.groups()
    pep440 = release + (
        {"dev": ".dev", "alpha": "a", "beta": "b", "rc": "rc"}[stage] + number if stage else ""
    )
    assert pep440 == python_version
