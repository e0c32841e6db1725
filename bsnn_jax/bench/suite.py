"""``bsnn bench``: every workload in its own process, then the ratios between figures measured
in this one run (the machine may be shared and noisy; ratios of the same run are what compare).

The steps of each workload are split over ``rounds`` passes through the list, run in
alternating order (forward, backward, forward, ...), and pooled: a burst of load from another
tenant then lands on every workload alike instead of on whichever ran during it, and a slow
drift over the run cancels between the two ends of the list.

Targets (issue 6, for the reference net at T=4, B=32 on a 2-core CPU): the training step at most
0.67x snnTorch's and at most 0.8x the PyTorch ANN bound's; step(T=8) / step(T=1) at most 8.5;
peak training memory below SpikingJelly's; ResNet-19 compile time under 30 s.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bsnn_jax.bench.workloads import WORKLOADS

MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Ratio:
    """``numerator.field / denominator.field``, and the bound it should stay under (if any)."""

    name: str
    numerator: str
    denominator: str
    field: str = "step_median_s"
    target: float | None = None


RATIOS = (
    Ratio("reference step / snnTorch step (T=4)", "reference_snn_t4", "snntorch_snn_t4", target=0.67),
    Ratio("reference step / PyTorch ANN bound step (T=4)", "reference_snn_t4", "torch_ann_t4", target=0.8),
    Ratio("reference step / SpikingJelly step (T=4)", "reference_snn_t4", "spikingjelly_snn_t4"),
    Ratio("reference step / its JAX ANN bound (T=4)", "reference_snn_t4", "reference_ann_t4"),
    Ratio("JAX ANN bound / PyTorch ANN bound (T=4)", "reference_ann_t4", "torch_ann_t4"),
    Ratio("reference step, library XLA options / XLA defaults (T=4)", "reference_snn_t4", "reference_snn_t4_xla_default"),
    Ratio("reference step, T folded into batch / per time step (T=4)", "reference_snn_t4_folded", "reference_snn_t4_per_step"),
    Ratio("reference step, bfloat16 convolutions / float32 (T=4)", "reference_snn_t4_bf16", "reference_snn_t4"),
    Ratio("ResNet-19 XLA temp memory, remat per block / none (T=4)", "resnet19_agmm_t4_remat", "resnet19_agmm_t4", "temp_bytes"),
    Ratio("reference step T=8 / T=1", "reference_snn_t8", "reference_snn_t1", target=8.5),
    Ratio("SpikingJelly step T=8 / T=1", "spikingjelly_snn_t8", "spikingjelly_snn_t1"),
    Ratio("reference peak RSS / SpikingJelly peak RSS (T=4)", "reference_snn_t4", "spikingjelly_snn_t4", "peak_rss_bytes", 1.0),
    Ratio("reference peak RSS / SpikingJelly peak RSS (T=16)", "reference_snn_t16", "spikingjelly_snn_t16", "peak_rss_bytes", 1.0),
    Ratio("reference peak RSS / SpikingJelly peak RSS (T=32)", "reference_snn_t32", "spikingjelly_snn_t32", "peak_rss_bytes"),
    Ratio("reference step / SpikingJelly step (T=16)", "reference_snn_t16", "spikingjelly_snn_t16"),
    Ratio("reference step / SpikingJelly step (T=32)", "reference_snn_t32", "spikingjelly_snn_t32"),
    Ratio("reference step T=16 / T=8", "reference_snn_t16", "reference_snn_t8", target=2.1),
    Ratio("reference step T=32 / T=16", "reference_snn_t32", "reference_snn_t16", target=2.1),
    Ratio("reference peak RSS / snnTorch peak RSS (T=4)", "reference_snn_t4", "snntorch_snn_t4", "peak_rss_bytes"),
    Ratio("ResNet-19 AGMM step / its ANN bound (T=4)", "resnet19_agmm_t4", "resnet19_ann_t4"),
    Ratio("VGGSNN AGMM step / its ANN bound (T=10)", "vggsnn_agmm_t10", "vggsnn_ann_t10"),
)
COMPILE_TARGETS = {"resnet19_agmm_t2": 30.0, "resnet19_agmm_t4": 30.0}


def default_workloads(include_slow: bool = False) -> list[str]:
    """The reference net in every framework and T; with ``include_slow`` also ResNet-19 and VGGSNN."""
    return [name for name, w in WORKLOADS.items() if include_slow or not w.slow]


def run_workload(name: str, steps: int, timeout: float) -> dict[str, Any]:
    """``python -m bsnn_jax.bench.worker NAME`` in a new process; its record, or one with ``error``."""
    command = [sys.executable, "-m", "bsnn_jax.bench.worker", name, "--steps", str(steps)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"workload": name, "error": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"workload": name, "error": f"worker exited with {done.returncode}: {' | '.join(tail)}"}


def ratios(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ``RATIOS`` entry whose two workloads were measured, and every compile-time target."""
    by_name = {r["workload"]: r for r in records if "error" not in r}
    out = []
    for ratio in RATIOS:
        top, bottom = by_name.get(ratio.numerator), by_name.get(ratio.denominator)
        if top is None or bottom is None or not top.get(ratio.field) or not bottom.get(ratio.field):
            continue
        value = top[ratio.field] / bottom[ratio.field]
        met = None if ratio.target is None else value <= ratio.target
        out.append({**dataclasses.asdict(ratio), "value": value, "met": met})
    for name, limit in COMPILE_TARGETS.items():
        if name in by_name:
            value = by_name[name]["compile_s"]
            target = {"numerator": name, "denominator": None, "field": "compile_s", "target": limit}
            out.append({"name": f"{name} compile time (s)", **target, "value": value, "met": value <= limit})
    return out


def run(
    names: Sequence[str],
    *,
    steps: int = 21,
    rounds: int = 3,
    timeout: float = 1800.0,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Measures ``names``, one process per workload and round, ``ceil(steps / rounds)`` timed
    steps each, and pools the rounds (``pool_rounds``); returns ``{"machine", "steps", "rounds",
    "records", "ratios", "runtime_s"}``."""
    from bsnn_jax.bench.timing import machine_info  # imports jax: not needed to list workloads

    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    if rounds < 1 or steps < rounds:
        raise ValueError(f"need 1 <= rounds <= steps, got rounds={rounds}, steps={steps}")
    start = time.perf_counter()
    info = machine_info(("jax", "jaxlib", "flax", "optax", "torch", "snntorch", "spikingjelly"))
    per_round = -(-steps // rounds)
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            record = run_workload(name, per_round, timeout)
            measured[name].append(record)
            log(f"round {index + 1}/{rounds} " + progress_line(record))
    records = [pool_rounds(measured[name]) for name in names]
    result = {"machine": info, "steps": per_round * rounds, "rounds": rounds, "records": records}
    return {**result, "ratios": ratios(records), "runtime_s": time.perf_counter() - start}


def pool_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One record from a workload's records of several rounds: the step statistics of all their
    step times together, the median compile time and inference rate, the highest peak memory,
    and each round's median step (``round_step_medians_s``). A round that failed fails the whole
    record (its error is kept), so no ratio rests on part of the rounds."""
    from bsnn_jax.bench.timing import summary

    failed = [r for r in rounds if "error" in r]
    if failed:
        return failed[0]
    times = [t for r in rounds for t in r["step_times_s"]]
    pooled = {**rounds[-1], "steps": len(times), "step_times_s": times}
    pooled.update({f"step_{k}": v for k, v in summary(times).items()})
    pooled["round_step_medians_s"] = [r["step_median_s"] for r in rounds]
    for field in ("compile_s", "inference_images_per_s"):
        pooled[field] = statistics.median(r[field] for r in rounds)
    for field in ("peak_rss_bytes", "rss_growth_bytes"):
        values = [r[field] for r in rounds if r.get(field) is not None]
        pooled[field] = max(values) if values else None
    return pooled


def progress_line(record: dict[str, Any]) -> str:
    """One line of ``bsnn bench``'s progress: a workload's step, compile time and memory, or why it was skipped."""
    if "error" in record:
        return f"{record['workload']:>22}  skipped: {record['error']}"
    return (
        f"{record['workload']:>22}  step {record['step_median_s']:7.3f} s  compile {record['compile_s']:6.1f} s  "
        f"peak RSS {_mib(record.get('peak_rss_bytes'))} MiB  XLA temp {_mib(record.get('temp_bytes'))} MiB"
    )


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def markdown(result: dict[str, Any]) -> str:
    """The records and the ratios as two markdown tables."""
    lines = [
        "| workload | framework | T | batch | step median (s) | IQR (s) | rounds' medians (s) "
        "| compile / first step (s) | XLA temp (MiB) | peak RSS (MiB) | inference (img/s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["records"]:
        if "error" in r:
            lines.append(f"| {r['workload']} | skipped: {r['error']} |  |  |  |  |  |  |  |  |  |")
            continue
        iqr = f"{r['step_q1_s']:.3f}-{r['step_q3_s']:.3f}"
        per_round = " / ".join(f"{m:.3f}" for m in r.get("round_step_medians_s", [r["step_median_s"]]))
        t = f"{r['timesteps']} (ANN: {r['timesteps']}x{r['batch_size']})" if r["ann"] else str(r["timesteps"])
        lines.append(
            f"| {r['workload']} | {r['framework']} | {t} | {r['batch_size']} | {r['step_median_s']:.3f} | {iqr} | {per_round} | "
            f"{r['compile_s']:.1f} | {_mib(r.get('temp_bytes'))} | {_mib(r.get('peak_rss_bytes'))} | {r['inference_images_per_s']:.0f} |"
        )
    lines += ["", "| ratio (same run) | value | target | met |", "|---|---|---|---|"]
    for q in result["ratios"]:
        target = "" if q["target"] is None else f"<= {q['target']:g}"
        met = "" if q["met"] is None else ("yes" if q["met"] else "**no**")
        value = f"{q['value']:.1f}" if q["field"] == "compile_s" else f"{q['value']:.2f}"
        lines.append(f"| {q['name']} | {value} | {target} | {met} |")
    return "\n".join(lines) + "\n"


def save(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Writes ``<out>.json`` and ``<out>.md``; returns their paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path
