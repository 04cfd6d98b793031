"""The example page's client is the ``stirfried-client`` bundle built from ``js/``, unmodified.

``npm run bundle`` in ``js/`` writes the bundle and its checksums; ``js/ci.sh``
checks that a fresh build equals the committed files byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
VENDOR = REPOSITORY / "server" / "development" / "static" / "vendor" / "stirfried-client"


def test_vendored_files_match_the_recorded_checksums():
    lines = (VENDOR / "SHA256SUMS").read_text().splitlines()
    recorded = {name: digest for digest, name in (line.split("  ") for line in lines)}
    assert set(recorded) == {"stirfried-client.js", "msgpack-parser.js", "LICENSES.txt"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_the_bundle_is_the_package_version_and_ships_the_licences_of_what_it_bundles():
    version = json.loads((REPOSITORY / "js" / "package.json").read_text())["version"]
    assert f"stirfried-client {version} " in (VENDOR / "stirfried-client.js").read_text()[:200]
    licences = (VENDOR / "LICENSES.txt").read_text()
    for package in ("stirfried-client", "socket.io-client", "engine.io-client", "socket.io-msgpack-parser"):
        assert f"\n{package} " in f"\n{licences}", package


def test_the_package_lock_pins_the_bundled_socketio_client():
    lock = json.loads((REPOSITORY / "js" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/socket.io-client"]["version"].startswith("4.")
