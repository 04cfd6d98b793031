"""``python -m bench``: start a stack, run every scenario, print the table (and write JSON).

python -m bench [--redis-url URL] [--seconds 10] [--idle-clients 10000]
                [--against stirfried==0.7.0] [--json FILE] [--smoke] [--parts classic,scale-out,cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench import scaleout, scenarios
from bench.baseline import baseline_python
from bench.stack import THIS_CHECKOUT, Stack, System, raise_open_file_limit, redis_server, running_stack
from bench.stack import wait_for_idle_worker as drain

Results = dict[str, dict[str, Any]]


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--redis-url", help="Redis for broker, results and events (default: embedded Valkey)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each timed scenario")
    parser.add_argument("--idle-clients", type=int, default=10_000, help="websocket clients held idle")
    parser.add_argument(
        "--against", metavar="SPEC", help="also measure a released Stirfried, e.g. stirfried==0.7.0"
    )
    parser.add_argument(
        "--against-uvicorn",
        choices=("standard", "plain"),
        default="standard",
        help="run the released gateway on uvloop + httptools (standard) or asyncio + h11 (plain)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every scenario runs")
    parser.add_argument(
        "--parts",
        default="classic,scale-out,cluster,paired,submit-costs",
        help="comma-separated: classic (one gateway), scale-out (1/2/4 gateways), cluster (events on a "
        "three-node Valkey Cluster, this checkout only), paired (end to end on both systems at once, "
        "one task each in turn; needs --against), submit-costs (the catalog check and idempotency "
        "keys on submit throughput, and the catalog's reads; this checkout only)",
    )
    return parser.parse_args(argv)


FLOOD_EVENTS = 20_000


def measure_scale_out(system: System, redis_url: str, smoke: bool, events_url: str | None = None) -> Results:
    """The idle second gateway, and CPU per delivered event with 1, 2 and 4 gateways."""
    total = 400 if smoke else FLOOD_EVENTS
    results: Results = {}
    print(f"measuring {system.name}: scale-out{' on the cluster' if events_url else ''} ...", file=sys.stderr)
    with running_stack(system, redis_url, gateways=2, events_url=events_url) as stack:
        results["idle_gateway_b"] = asyncio.run(scaleout.idle_gateway(stack, 4, total // 4))
        drain(redis_url)
    for gateways in (1, 2, 4):
        with running_stack(system, redis_url, gateways=gateways, events_url=events_url) as stack:
            results[f"per_event_{gateways}_gateways"] = asyncio.run(
                scaleout.floods(stack, gateways, 2, total // (2 * gateways))
            )
            drain(redis_url)
            # One flood per gateway: each receiving gateway is fed by one worker process at a
            # time, whatever their number (with two floods each, one gateway alone is fed by
            # both worker processes at once, and its wake-ups carry more events).
            results[f"per_event_{gateways}_gateways_one_flood"] = asyncio.run(
                scaleout.floods(stack, gateways, 1, total // gateways)
            )
            drain(redis_url)
    return results


def measure_submit_costs(redis_url: str, seconds: float, smoke: bool) -> Results:
    """What the catalog and idempotency keys cost a submit, and a catalog refresh with 1 and
    100 workers against Celery's ``inspect().registered()`` (this checkout only)."""
    results: Results = {}
    with running_stack(THIS_CHECKOUT, redis_url) as stack:
        results["http_c32_catalog_on"] = asyncio.run(
            scenarios.http_submissions(stack.gateway_url, 32, seconds)
        )
        drain(redis_url)
        results["http_c32_idempotency_keys"] = asyncio.run(
            scenarios.http_submissions(stack.gateway_url, 32, seconds, idempotency_keys=True)
        )
        drain(redis_url)
        reads = 20 if smoke else 2000
        for workers, distinct in ((1, False), (100, False), (100, True)):
            name = f"catalog_read_{workers}_workers" + ("_distinct" if distinct else "")
            results[name] = asyncio.run(scenarios.catalog_reads(redis_url, workers, distinct, reads))
        results["inspect_registered"] = scenarios.inspect_registered(redis_url, 2 if smoke else 5)
    with running_stack(
        THIS_CHECKOUT, redis_url, overrides={"stirfried_refuse_unserved_tasks": False}
    ) as stack:
        results["http_c32_catalog_off"] = asyncio.run(
            scenarios.http_submissions(stack.gateway_url, 32, seconds)
        )
        drain(redis_url)
    return results


def measure_paired(baseline: System, smoke: bool) -> Results:
    """End to end on both systems at once (each on a Redis of its own), one task each in turn."""
    print(f"measuring end to end, paired with {baseline.name} ...", file=sys.stderr, flush=True)
    with (
        redis_server(None) as ours_redis,
        redis_server(None) as theirs_redis,
        running_stack(THIS_CHECKOUT, ours_redis) as ours,
        running_stack(baseline, theirs_redis) as theirs,
    ):
        tasks = 20 if smoke else 1000
        return asyncio.run(scenarios.paired_end_to_end(ours.gateway_url, theirs.gateway_url, tasks))


def measure_on_cluster(redis_url: str, smoke: bool) -> Results:
    """This checkout with task events on a three-node Valkey Cluster (broker and results on one)."""
    from tests.services import redis_cluster

    scale = 0.02 if smoke else 1.0
    with tempfile.TemporaryDirectory() as directory, redis_cluster(Path(directory)) as cluster_url:
        results = measure_scale_out(THIS_CHECKOUT, redis_url, smoke, events_url=cluster_url)
        with running_stack(THIS_CHECKOUT, redis_url, events_url=cluster_url) as stack:
            results["end_to_end_add"] = asyncio.run(
                scenarios.end_to_end(stack.gateway_url, max(5, int(1000 * scale)))
            )
            results["progress_flood"] = asyncio.run(
                scenarios.progress_flood(stack.gateway_url, max(50, int(10_000 * scale)))
            )
    return results


def scale_out_table(results: Results) -> str:
    header = f"{'scale-out scenario':<36} {'gateways':>8} {'events':>8} {'CPU s per gateway':<24}"
    rows = [f"{header} {'us/event':>9} {'net':>6} {'reads/event':>11}"]
    for name, figures in results.items():
        if "cpu_seconds" not in figures:
            continue
        cpu = " ".join(f"{value:.2f}" for value in figures["cpu_seconds"])
        rows.append(
            f"{name:<36} {figures['gateways']:>8} {figures['events_delivered']:>8} {cpu:<24} "
            f"{figures['cpu_us_per_event']:>9.1f} {figures['net_cpu_us_per_event']:>6.1f} "
            f"{figures.get('reads_per_event', math.nan):>11.3f}"
        )
    for suffix, label in (("", "two floods per gateway"), ("_one_flood", "one flood per gateway")):
        one, four = results.get(f"per_event_1_gateways{suffix}"), results.get(f"per_event_4_gateways{suffix}")
        if one and four:
            growth = ratio(four["cpu_us_per_event"], one["cpu_us_per_event"])
            rows.append(f"CPU per event, 4 gateways / 1 gateway ({label}): {growth:.2f}")
    idle = results.get("idle_gateway_b")
    if idle:
        rows.append(f"gateway B (follows nothing) / gateway A CPU: {idle['b_over_a']:.3f}")
    return "\n".join(rows)


async def measure(stack: Stack, seconds: float, smoke: bool, idle_clients: int) -> Results:
    scale = 0.02 if smoke else 1.0
    url = stack.gateway_url
    results: Results = {}
    for concurrency in (32, 128):
        results[f"http_c{concurrency}"] = await scenarios.http_submissions(url, concurrency, seconds)
        drain(stack.redis_url)
    for clients in (16, 64):
        results[f"socketio_{clients}_clients"] = await scenarios.socketio_acks(url, clients, seconds)
        drain(stack.redis_url)
    results["end_to_end_add"] = await scenarios.end_to_end(url, max(5, int(1000 * scale)))
    results["progress_flood"] = await scenarios.progress_flood(url, max(50, int(10_000 * scale)))
    results["idle_clients"] = await scenarios.idle_clients(
        url, stack.gateway_pid, idle_clients, max(5, int(500 * scale))
    )
    return results


def measure_system(system: System, redis_url: str, arguments: argparse.Namespace, seconds: float) -> Results:
    parts = arguments.parts.split(",")
    results: Results = {}
    if "classic" in parts:
        print(f"measuring {system.name} ...", file=sys.stderr, flush=True)
        with running_stack(system, redis_url) as stack:
            results = asyncio.run(measure(stack, seconds, arguments.smoke, arguments.idle_clients))
            if system is THIS_CHECKOUT:
                # Same conditions as the HTTP scenario: the worker consumes what is published.
                drain(redis_url)
                results["celery_send_task_floor"] = scenarios.bare_send_task(redis_url, seconds)
    if "scale-out" in parts:
        results.update(measure_scale_out(system, redis_url, arguments.smoke))
    return results


def table(results: Results) -> str:
    rows = [f"{'scenario':<26} {'per second':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors/lost':>11}"]
    for name, figures in results.items():
        errors = figures.get("errors", figures.get("lost", ""))
        rate, p50, p99 = (figures.get(key, math.nan) for key in ("per_second", "p50_ms", "p99_ms"))
        rows.append(f"{name:<26} {rate:>11.0f} {p50:>8.2f} {p99:>8.2f} {errors!s:>11}")
    idle = results.get("idle_clients")
    if idle:
        rows.append(
            f"idle clients: {idle['clients']} connected in {idle['connect_seconds']:.1f} s, "
            f"{idle['kib_per_client']:.1f} KiB each"
        )
    return "\n".join(rows)


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs and not math.isnan(theirs) else math.nan


# (label, scenario, figure, target for ours / theirs)
COMPARED = (
    ("HTTP submissions/s (c32)", "http_c32", "per_second", ">= 3"),
    ("HTTP submissions/s (c128)", "http_c128", "per_second", ">= 3"),
    ("Socket.IO acks/s (16)", "socketio_16_clients", "per_second", ">= 3"),
    ("Socket.IO acks/s (64)", "socketio_64_clients", "per_second", ">= 3"),
    ("end-to-end p50 ms", "end_to_end_add", "p50_ms", "<= 0.5"),
    ("end-to-end p99 ms", "end_to_end_add", "p99_ms", "<= 0.5"),
    ("progress events/s", "progress_flood", "per_second", ">= 10"),
    ("KiB per idle client", "idle_clients", "kib_per_client", "<= 0.75"),
    ("idle gateway B CPU / A's", "idle_gateway_b", "b_over_a", "<= 0.05"),
    ("CPU us/event, 1 gateway", "per_event_1_gateways", "cpu_us_per_event", "<= 1"),
    ("CPU us/event, 4 gateways", "per_event_4_gateways", "cpu_us_per_event", "<= 1"),
    ("net CPU us/event, 4 gateways", "per_event_4_gateways", "net_cpu_us_per_event", "<= 1"),
    ("CPU us/event, 1 gw, 1 flood", "per_event_1_gateways_one_flood", "cpu_us_per_event", "<= 1"),
    ("CPU us/event, 4 gw, 1 flood", "per_event_4_gateways_one_flood", "cpu_us_per_event", "<= 1"),
)


def comparison(ours: Results, theirs: Results) -> dict[str, dict[str, Any]]:
    """Our figure / theirs, with the issue's target for each."""
    rows = {
        label: (ours[scenario][figure], theirs[scenario][figure], target)
        for label, scenario, figure, target in COMPARED
        if scenario in ours and scenario in theirs
    }
    if "celery_send_task_floor" in ours:
        floor = ours["celery_send_task_floor"]["per_second"]
        rows["HTTP c32 vs bare send_task/s"] = (ours["http_c32"]["per_second"], floor, ">= 1.0")
    return {
        name: {"ours": a, "theirs": b, "ratio": ratio(a, b), "target": target}
        for name, (a, b, target) in rows.items()
    }


def comparison_table(rows: dict[str, dict[str, Any]], against: str) -> str:
    lines = [f"{'':<30} {'ours':>10} {against:>18} {'ratio':>7} {'target':>7}  met"]
    for name, row in rows.items():
        operator, bound = row["target"].split()
        value = row["ratio"]
        met = value >= float(bound) if operator == ">=" else value <= float(bound)
        lines.append(
            f"{name:<30} {row['ours']:>10.1f} {row['theirs']:>18.1f} {value:>7.2f} {row['target']:>7}  "
            f"{'yes' if met else 'NO'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    seconds = 0.5 if arguments.smoke else arguments.seconds
    if arguments.smoke:
        arguments.idle_clients = min(arguments.idle_clients, 50)
    raise_open_file_limit()
    baseline = (
        System(arguments.against, baseline_python(arguments.against), legacy=True)
        if arguments.against
        else None
    )
    machine = {**platform.uname()._asdict(), "cpus": psutil.cpu_count()}
    report: dict[str, Any] = {"machine": machine, "python": sys.version}
    with redis_server(arguments.redis_url) as redis_url:
        # First, while no worker runs: the cost of our event log on the worker side.
        log_cost = scenarios.event_log_cost(redis_url, 200 if arguments.smoke else 10_000)
        ours = measure_system(THIS_CHECKOUT, redis_url, arguments, seconds)
        ours.update(log_cost)
        if "submit-costs" in arguments.parts.split(","):
            print("measuring the catalog and idempotency keys ...", file=sys.stderr, flush=True)
            ours.update(measure_submit_costs(redis_url, seconds, arguments.smoke))
        theirs = measure_system(baseline, redis_url, arguments, seconds) if baseline else None
        cluster = (
            measure_on_cluster(redis_url, arguments.smoke)
            if "cluster" in arguments.parts.split(",")
            else None
        )
    paired = (
        measure_paired(baseline, arguments.smoke)
        if baseline is not None and "paired" in arguments.parts.split(",")
        else None
    )
    report["results"] = ours
    print(table({name: figures for name, figures in ours.items() if "cpu_seconds" not in figures}))
    print(scale_out_table(ours))
    if "celery_send_task_floor" in ours:
        floor = ours["celery_send_task_floor"]["per_second"]
        print(f"HTTP submissions / bare send_task: c32 {ratio(ours['http_c32']['per_second'], floor):.2f}x")
    print(
        "event log: "
        + ", ".join(
            f"{name} {ours[name]['per_second']:.0f}/s "
            f"{ours[name]['bytes_per_1000_events'] / 1024:.0f} KiB/1000"
            for name in ("event_log_on", "event_log_off", "socketio_manager_publish")
        )
    )
    if "http_c32_catalog_off" in ours:
        off, on = (ours[name]["per_second"] for name in ("http_c32_catalog_off", "http_c32_catalog_on"))
        keyed = ours["http_c32_idempotency_keys"]["per_second"]
        print(
            f"submit costs (HTTP c32): catalog check on / off {ratio(on, off):.2f}x, "
            f"idempotency keys / none {ratio(keyed, on):.2f}x; "
            "catalog read p50 "
            + ", ".join(
                f"{name.removeprefix('catalog_read_')} {ours[name]['p50_ms']:.2f} ms"
                for name in ours
                if name.startswith("catalog_read_")
            )
            + f"; inspect().registered() p50 {ours['inspect_registered']['p50_ms']:.0f} ms"
        )
    if theirs is not None:
        report["against"] = {
            "spec": arguments.against,
            "uvicorn": arguments.against_uvicorn,
            "results": theirs,
        }
        report["comparison"] = rows = comparison(ours, theirs)
        print(f"\n{arguments.against}:")
        print(table({name: figures for name, figures in theirs.items() if "cpu_seconds" not in figures}))
        print(scale_out_table(theirs))
        print()
        print(comparison_table(rows, arguments.against))
    if paired is not None:
        report["paired_end_to_end"] = paired
        ours_e2e, theirs_e2e = paired["ours"], paired["theirs"]
        print(
            f"\nend to end, paired (one task each in turn): ours p50 {ours_e2e['p50_ms']:.2f} / p99 "
            f"{ours_e2e['p99_ms']:.2f} ms, {arguments.against} p50 {theirs_e2e['p50_ms']:.2f} / p99 "
            f"{theirs_e2e['p99_ms']:.2f} ms, p50 ratio {ratio(ours_e2e['p50_ms'], theirs_e2e['p50_ms']):.2f}"
        )
    if cluster is not None:
        report["cluster"] = cluster
        print("\nthis checkout, task events on a three-node Valkey Cluster:")
        print(table({name: figures for name, figures in cluster.items() if "cpu_seconds" not in figures}))
        print(scale_out_table(cluster))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
