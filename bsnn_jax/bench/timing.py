"""Time as every benchmark measures it: wall-clock seconds of blocked calls, their median and
quartiles, and the machine they ran on (the machine may be shared: compare within one run)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import jax

from bsnn_jax.bench.memory import PeakRss


def blocked(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` once its outputs are computed: JAX returns before, so a timed call must wait."""
    return jax.block_until_ready(fn(*args))


def timed_calls(call: Callable[[], Any], count: int) -> list[float]:
    """Wall-clock seconds of ``count`` calls of ``call``, each one's result already ready (the
    callable blocks on its outputs)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict[str, float | None]:
    """Median, min and the interquartile range of a list of timings (None when empty)."""
    if not times:
        return {"median_s": None, "min_s": None, "q1_s": None, "q3_s": None}
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_s": statistics.median(times), "min_s": min(times), "q1_s": quartiles[0], "q3_s": quartiles[2]}


def training_steps(one_step: Callable[[], Any], steps: int, *, warmup: int) -> dict[str, Any]:
    """Times ``steps`` calls of ``one_step`` after ``warmup`` untimed ones: ``step_median_s``,
    ``step_min_s``, quartiles, ``step_times_s``, ``peak_rss_bytes`` (the process's peak resident
    memory over the timed calls, Linux) and ``rss_growth_bytes`` (that peak over the resident
    memory before them); the memory fields are None where they cannot be measured."""
    timed_calls(one_step, warmup)
    with PeakRss() as rss:
        times = timed_calls(one_step, steps)
    return {
        **{f"step_{k}": v for k, v in summary(times).items()},
        "step_times_s": times,
        "peak_rss_bytes": rss.peak_bytes,
        "rss_growth_bytes": rss.growth_bytes,
    }


def images_per_second(infer: Callable[[], Any], images: int, calls: int) -> float:
    """``images`` over the median time of ``calls`` calls of ``infer`` (after one untimed call, which
    compiles). Benchmarks count an image of T frames once: the ANN bound's T*B frames are B images."""
    infer()
    return images / summary(timed_calls(infer, calls))["median_s"]


def machine_info(packages: tuple[str, ...] = ("jax", "jaxlib", "flax", "optax")) -> dict[str, Any]:
    """Versions of ``packages`` (those installed), Python, platform, the JAX backend, CPU count and load."""
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    device = jax.devices()[0]
    return {
        **versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": f"{device.platform}:{device.device_kind}",
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
