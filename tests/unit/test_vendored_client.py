"""The example page's Socket.IO client is the npm package's build, unmodified."""

from __future__ import annotations

import hashlib
from pathlib import Path

VENDOR = (
    Path(__file__).resolve().parents[2] / "server" / "development" / "static" / "vendor" / "socket.io-client"
)


def test_vendored_files_match_the_recorded_checksums():
    lines = (VENDOR / "SHA256SUMS").read_text().splitlines()
    recorded = {name: digest for digest, name in (line.split("  ") for line in lines)}
    assert set(recorded) == {"socket.io.min.js", "socket.io.msgpack.min.js", "LICENSE"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_vendored_version_is_the_one_in_the_bundle_header():
    version = (VENDOR / "VERSION").read_text().strip()
    assert f"Socket.IO v{version}" in (VENDOR / "socket.io.min.js").read_text()[:200]
