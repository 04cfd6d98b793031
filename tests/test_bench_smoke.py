"""A seconds-long run of the benchmark, so it cannot rot (no thresholds: figures live in bench/).

It runs side by side with Stirfried 0.7.0, installed from PyPI into a cached
virtual environment (``~/.cache/stirfried-bench``) as ``--against`` does, so it
needs the package index: it runs with STIRFRIED_TEST_NETWORK=1 (.ci/run sets it).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import services

SCENARIOS = {
    "http_c32", "http_c128", "socketio_16_clients", "socketio_64_clients",
    "end_to_end_add", "progress_flood", "idle_clients",
}  # fmt: skip
OURS_ONLY = {"celery_send_task_floor", "event_log_on", "event_log_off", "socketio_manager_publish"}
SCALE_OUT = {
    "idle_gateway_b", "per_event_1_gateways", "per_event_2_gateways", "per_event_4_gateways",
    "per_event_1_gateways_one_flood", "per_event_2_gateways_one_flood", "per_event_4_gateways_one_flood",
}  # fmt: skip
SUBMIT_COSTS = {
    "http_c32_catalog_on", "http_c32_catalog_off", "http_c32_idempotency_keys",
    "catalog_read_1_workers", "catalog_read_100_workers", "catalog_read_100_workers_distinct",
    "inspect_registered",
}  # fmt: skip


@pytest.mark.network
@pytest.mark.timeout(600)  # two systems, 1/2/4 gateways each, a cluster, the paired run
def test_benchmark_smoke_run_measures_both_systems(tmp_path):
    output = tmp_path / "results.json"

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--against", "stirfried==0.7.0", "--json", str(output)],
        cwd=services.REPOSITORY, capture_output=True, text=True, timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    ours, theirs = report["results"], report["against"]["results"]
    assert set(ours) == SCENARIOS | OURS_ONLY | SCALE_OUT | SUBMIT_COSTS
    assert set(theirs) == SCENARIOS | SCALE_OUT
    assert set(report["cluster"]) == SCALE_OUT | {"end_to_end_add", "progress_flood"}
    assert set(report["paired_end_to_end"]) == {"ours", "theirs"}
    for results in (ours, report["cluster"]):
        # Every event of the floods reached the clients that follow them.
        assert results["idle_gateway_b"]["events_delivered"] == results["idle_gateway_b"]["events_expected"]
    for results in (ours, theirs):
        assert all(figures.get("errors", 0) == 0 for figures in results.values()), results
        assert results["progress_flood"]["lost"] == 0 and results["progress_flood"]["in_order"]
        assert results["idle_clients"]["clients"] == 50
    for results in (ours, theirs, report["cluster"]):
        # How many events each wake-up carried, beside each per-event cost.
        assert all(results[name]["reads_per_event"] > 0 for name in SCALE_OUT), results
    assert len(report["comparison"]) == 15
    assert "CPU per event, 4 gateways / 1 gateway (one flood per gateway)" in result.stdout
    assert "submit costs (HTTP c32): catalog check on / off" in result.stdout
    assert "HTTP submissions/s (c32)" in result.stdout and "stirfried==0.7.0" in result.stdout
