"""What every benchmark measures the same way: XLA's memory of a compiled step, the process's
peak resident memory, wall-clock medians of blocked calls, and the machine they ran on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import jax


def memory_record(compiled: jax.stages.Compiled) -> dict[str, int]:
    """XLA's buffer sizes of a compiled step and ``peak_bytes = argument + output + temp - alias``:
    the state and batch passed in, the outputs not written in place of donated inputs, and the
    one scratch buffer XLA:CPU allocates for all intermediates. (The stats' own
    ``peak_memory_in_bytes`` is not used: on XLA:CPU it reports only about the argument size.)"""
    stats = compiled.memory_analysis()
    parts = {
        "argument_bytes": stats.argument_size_in_bytes,
        "output_bytes": stats.output_size_in_bytes,
        "temp_bytes": stats.temp_size_in_bytes,
        "alias_bytes": stats.alias_size_in_bytes,
        "generated_code_bytes": stats.generated_code_size_in_bytes,
    }
    parts["peak_bytes"] = parts["argument_bytes"] + parts["output_bytes"] + parts["temp_bytes"] - parts["alias_bytes"]
    return parts


def proc_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Resets the process's ``VmHWM`` to its current RSS (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


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
    rss_before = proc_status_kib("VmRSS") if reset_peak_rss() else None
    times = timed_calls(one_step, steps)
    peak = proc_status_kib("VmHWM")
    measured = peak is not None and rss_before is not None
    return {
        **{f"step_{k}": v for k, v in summary(times).items()},
        "step_times_s": times,
        "peak_rss_bytes": peak * 1024 if measured else None,
        "rss_growth_bytes": (peak - rss_before) * 1024 if measured else None,
    }


def images_per_second(infer: Callable[[], Any], images: int, calls: int) -> float:
    """``images`` over the median time of ``calls`` calls of ``infer`` (after one untimed call).
    Benchmarks count an image of T frames once: the ANN bound's T*B frames are B images."""
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
