"""``python -m bench``: start a stack and print the benchmark table (and write JSON).

python -m bench [--redis-url URL] [--seconds 10] [--json bench/results.json] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.stack import running_stack


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--redis-url", help="Redis for broker, results and events (default: embedded Valkey)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each timed scenario")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every scenario runs")
    return parser.parse_args(argv)


async def measure(gateway_url: str, seconds: float, smoke: bool) -> dict[str, Any]:
    scale = 0.02 if smoke else 1.0
    results: dict[str, Any] = {}
    for concurrency in (32, 128):
        results[f"http_c{concurrency}"] = await scenarios.http_submissions(gateway_url, concurrency, seconds)
    for clients in (16, 64):
        results[f"socketio_{clients}_clients"] = await scenarios.socketio_acks(gateway_url, clients, seconds)
    results["end_to_end_add"] = await scenarios.end_to_end(gateway_url, max(5, int(1000 * scale)))
    results["progress_flood"] = await scenarios.progress_flood(gateway_url, max(50, int(10_000 * scale)))
    return results


def table(results: dict[str, Any]) -> str:
    rows = [f"{'scenario':<22} {'per second':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors/lost':>11}"]
    for name, figures in results.items():
        errors = figures.get("errors", figures.get("lost", ""))
        rate, p50, p99 = (figures.get(key, float("nan")) for key in ("per_second", "p50_ms", "p99_ms"))
        rows.append(f"{name:<22} {rate:>11.0f} {p50:>8.2f} {p99:>8.2f} {errors:>11}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    seconds = 0.5 if arguments.smoke else arguments.seconds
    with running_stack(arguments.redis_url) as stack:
        results = asyncio.run(measure(stack.gateway_url, seconds, arguments.smoke))
        results["celery_send_task_floor"] = scenarios.bare_send_task(stack.redis_url, seconds)
    floor = results["celery_send_task_floor"]["per_second"]
    for name in ("http_c32", "http_c128"):
        results[name]["ratio_to_floor"] = results[name]["per_second"] / floor if floor else None
    print(table(results))
    print(f"HTTP submissions / bare send_task: c32 {results['http_c32']['ratio_to_floor']:.2f}x, "
          f"c128 {results['http_c128']['ratio_to_floor']:.2f}x")  # fmt: skip
    if arguments.json:
        arguments.json.write_text(
            json.dumps(
                {"machine": platform.uname()._asdict(), "python": sys.version, "results": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
