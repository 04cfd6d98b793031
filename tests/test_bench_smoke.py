"""A seconds-long run of the benchmark, so it cannot rot (no thresholds: figures live in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests import services


def test_benchmark_smoke_run_produces_every_scenario(tmp_path):
    output = tmp_path / "results.json"

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(output)],
        cwd=services.REPOSITORY, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())["results"]
    assert set(results) == {
        "http_c32", "http_c128", "socketio_16_clients", "socketio_64_clients",
        "end_to_end_add", "progress_flood", "celery_send_task_floor",
    }  # fmt: skip
    assert all(figures.get("errors", 0) == 0 for figures in results.values())
    assert results["progress_flood"]["lost"] == 0 and results["progress_flood"]["in_order"]
    assert "http_c32" in result.stdout
