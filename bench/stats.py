"""Latency percentiles and throughput."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0.5 = median) of ``samples``, in the samples' unit."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies: list[float], seconds: float, errors: int) -> dict[str, float]:
    """Rate per second and p50/p99 in milliseconds."""
    return {
        "count": len(latencies),
        "per_second": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
        "errors": errors,
    }
