"""Training memory and step time of BPTT vs online training over the number of time steps T.

    python -m bsnn_jax.bench.online_memory [--model vgg11] [--batch-size 8] [--timesteps 1,2,4,8,16,32]
        [--repeats 3] [--methods bptt,online,online_unrolled] [--time-max-t 16]
        [--step-time-limit 15] [--lif autodiff] [--remat auto] [--interleave]
        [--out benchmarks/results/online_memory]

The BSO paper's claim: online training's memory does not grow with T (58 GB for BPTT vs 2.9 GB
for T-BSO at T=35, CIFAR-10 VGG-11). Every method trains the same network (the ``bsnn`` variant
with the BSO neuron) on the same random static batch:

- ``bptt``: ``train.mode=bptt``, SGD with momentum 0.9 on latent weights (AGMM's optimizer).
- ``online``: ``train.mode=online`` with an update per time step, T-BSO on +-1 kernels and SGD
  without momentum on the rest, as trained by default: the T-loop is one ``lax.scan`` (the form
  whose memory cannot depend on T).
- ``online_unrolled``: the same with ``train.online_unroll=True``, the T-loop written out T times.

Each step is built from a run config (``train_config``) by the functions ``bsnn train`` uses
(``bench.training.assemble``); learning rate 0.1, constant, no weight decay.

Memory is XLA's own buffer assignment of the compiled step (``bench.memory.memory_record``):
deterministic, no run needed. The measured column, where a step was run, is the growth of the
process's peak resident memory over the step calls (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` before the first call), a rough cross-check: it misses pages the
allocator had already touched.

Time: compile time of ``jit(...).lower().compile()``, then one warm-up call and ``--repeats``
timed calls (each fed the state the previous one returned, as the state is donated; outputs
blocked on), median and min. Step times are wall clock on a shared machine: noisy. With
``--interleave`` the timed calls run in rounds, each round calling every timed step once (in
alternating order), so the machine's drift, which on a shared VM moves one step's time by up to
30% between runs, hits every T alike; the step's growth per doubling of T is then the median over
rounds of that round's ratio (``summary["step_ratios"]``; the ratio of medians without it).

Defaults: VGG-11 (9.2 M parameters, 32x32x3 input), batch 8, T = 1..32, 3 timed calls, all
three methods; steps timed up to T = 16 only, and a method's timing stops after a warm-up call
over 15 s (memory is reported for every T). On 2 shared CPU cores (jax 0.10.2) the default run
took 14 min, most of it compiling: the unrolled online step at T = 32 alone takes 6.6 min to
compile, BPTT's 1 min (its T = 32 step would need 4.7 GB and several seconds per call).

Measured (``benchmarks/results/online_memory.json``, ``--methods bptt,online --time-max-t 32
--step-time-limit 60 --repeats 2 --lif fused``; the default ``--lif autodiff`` compiles to the
same bytes), peak MiB at T = 1 / 2 / 4 / 8 / 16 / 32:

- ``bptt``: 194 / 213 / 252 / 327 / 621 / 1081 (XLA temp 123 / 142 / 181 / 256 / 551 / 1011:
  1.41x, 2.15x, 1.84x per doubling from T = 4); before ``ops.batch_norm`` (issue 20) 211 / - /
  289 / 418 / 815 / 1467, and before issue 14 4812 at T = 32.
- ``online``: 143 / 197 / 197 / 197 / 197 / 197: flat from T = 2 on; T = 1 is the loop-free step.
  BPTT / online at T = 32: 5.5x (the BSO paper: 58 GB / 2.9 GB = 20x at T = 35).
- ``online_unrolled`` (not in that run; the tree before issue 14): 165 / 170 / 192 / 249 / 363 /
  592: XLA keeps buffers of earlier steps alive.

Step time (median, machine at load ~15 on 2 cores: ratios only): BPTT 1.5 / 2.7 / 4.9 / 9.4 /
21.9 s at T = 1..16, scanned online 1.1 / 2.8 / 8.7 / 14.1 / 34.3 / 41.2 s at T = 1..32.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from rich.console import Console
from rich.table import Table

from bsnn_jax import models
from bsnn_jax.bench import RESULTS_DIR
from bsnn_jax.bench.memory import PeakRss, memory_record
from bsnn_jax.bench.timing import machine_info, summary, timed_calls
from bsnn_jax.bench.training import Training, assemble
from bsnn_jax.configs.bso_table2 import BSO_NEURON, bso_recipe
from bsnn_jax.models.common import REMAT_CHOICES
from bsnn_jax.train import config as config_lib
from bsnn_jax.train.state import TrainState

METHODS = ("bptt", "online", "online_unrolled")
LABELS = {"bptt": "BPTT", "online": "online (T-BSO, lax.scan)", "online_unrolled": "online (T-BSO, unrolled)"}
LIF_BACKWARDS = {  # --lif: how BPTT differentiates the LIF (nn.LIF's fused and save_dtype)
    "autodiff": {"fused": False, "save_dtype": None},
    "fused": {"fused": True, "save_dtype": None},
    "fused_bf16": {"fused": True, "save_dtype": "bfloat16"},
    "every_step": {"fused": False, "save_dtype": None, "membrane_kept_every": 1},  # the membrane kept at every step
    # From T = 8 on, a rolled loop over chunks of 4 unrolled steps: compile time constant in T.
    "rolled_chunks": {"fused": False, "save_dtype": None, "unroll": 1},
    "fused_rolled": {"fused": True, "save_dtype": None, "unroll": 1},  # the same loop in the fused LIF
}
TARGET_ONLINE_GROWTH = 1.10  # online peak at the largest T within 10% of the smallest T
MIB = 2**20

Batch = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Config:
    """What to measure.

    Attributes:
      model: a family of ``models.FAMILIES``.
      batch_size: examples per step.
      timesteps: the T values, increasing.
      repeats: timed calls per (method, T) after the warm-up call.
      methods: a subset of ``METHODS``.
      time_max_t: time the steps of T <= this only (memory is reported for every T).
      step_time_limit: seconds; a warm-up call slower than this skips that configuration's timed
        calls and the timing of the method's larger T.
      input_shape: ``(H, W, C)``; the family's own by default.
      seed: of the model and the batch.
      lif: a ``LIF_BACKWARDS`` key: autodiff through the scanned steps (the default, as
        ``nn.LIF``'s), the fused custom_vjp LIF, the fused one keeping H[t] in bfloat16, autodiff
        with the membrane kept at every step (``membrane_kept_every=1``), or the loop over chunks
        of steps rolled (``unroll=1``) with the autodiff or the fused LIF.
      remat: ``model.remat`` (``models.common.REMAT_CHOICES``; "auto", the library's default), None for none.
      interleave: time in rounds over every timed step (see the module's docstring); every
        timed step's state stays alive until the rounds end.
    """

    model: str = "vgg11"
    batch_size: int = 8
    timesteps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    repeats: int = 3
    methods: tuple[str, ...] = METHODS
    time_max_t: int = 16
    step_time_limit: float = 15.0
    input_shape: tuple[int, int, int] | None = None
    seed: int = 0
    lif: str = "autodiff"
    remat: str | None = "auto"
    interleave: bool = False

    def __post_init__(self):
        if self.lif not in LIF_BACKWARDS:
            raise ValueError(f"unknown lif {self.lif!r}; known: {sorted(LIF_BACKWARDS)}")
        if self.remat is not None and self.remat not in REMAT_CHOICES:
            raise ValueError(f"unknown remat {self.remat!r}; known: {sorted(REMAT_CHOICES)}")
        if self.model not in models.FAMILIES:
            raise ValueError(f"unknown model {self.model!r}; known: {sorted(models.FAMILIES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.timesteps or any(t < 1 for t in self.timesteps) or list(self.timesteps) != sorted(set(self.timesteps)):
            raise ValueError(f"timesteps must be distinct positive integers in increasing order, got {self.timesteps}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be distinct names of {list(METHODS)}, got {list(self.methods)}")
        if self.time_max_t < 0:
            raise ValueError(f"time_max_t must be >= 0 (0: no timing), got {self.time_max_t}")
        if self.step_time_limit <= 0:
            raise ValueError(f"step_time_limit must be > 0 seconds, got {self.step_time_limit}")
        if self.input_shape is not None and (len(self.input_shape) != 3 or min(self.input_shape) < 1):
            raise ValueError(f"input_shape must be (H, W, C) of positive sizes, got {self.input_shape}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the random images: ``input_shape``, or the model family's."""
        return tuple(self.input_shape or models.FAMILIES[self.model].input_shape)


def make_batch(config: Config) -> Batch:
    """A random static batch ``{"image": [B, H, W, C], "label": [B]}`` (the image repeated over T)."""
    image_key, label_key = jax.random.split(jax.random.key(config.seed))
    return {
        "image": jax.random.normal(image_key, (config.batch_size, *config.image_shape), jnp.float32),
        "label": jax.random.randint(label_key, (config.batch_size,), 0, 10, jnp.int32),
    }


def train_config(method: str, timesteps: int, config: Config) -> ml_collections.ConfigDict:
    """The run config of ``method`` at T = ``timesteps``. The online methods train by BSO's recipe
    (``configs.bso_table2.bso_recipe``: T-BSO flips of +-1 kernels after every time step, SGD
    without momentum or weight decay on the rest); ``bptt`` trains latent weights by SGD with
    momentum 0.9 and no weight decay, on the same ``bsnn`` variant with the BSO neuron. All use
    the TET loss (one objective for all three) and a constant learning rate of 0.1 (the rates
    change neither memory nor time)."""
    if method == "bptt":
        c = config_lib.default_config()
        c.model.variant = "bsnn"
        c.model.neuron.update(BSO_NEURON)
        c.optimizer.name = "sgd"
        c.optimizer.momentum = 0.9
        c.optimizer.weight_decay = 0.0
    else:
        c = bso_recipe()
        c.train.online_unroll = method == "online_unrolled"
    c.model.neuron.update(LIF_BACKWARDS[config.lif])
    c.model.remat = config.remat
    c.seed = config.seed
    c.batch_size = config.batch_size
    c.model.name = config.model
    c.model.timesteps = timesteps
    c.loss.name = "tet"
    c.optimizer.learning_rate = 0.1
    c.schedule.name = "constant"
    return c


def build_step(method: str, timesteps: int, config: Config) -> Training:
    """The model, optimizer, initial (donatable) state and jitted step of ``method`` at T = ``timesteps``."""
    return assemble(train_config(method, timesteps, config), input_shape=config.image_shape, examples=config.batch_size)


def warm_up(compiled: jax.stages.Compiled, state: TrainState, batch: Batch) -> tuple[dict[str, Any], Callable[[], None]]:
    """One warm-up call of a compiled step: ``{"first_call_s", "measured_rss_growth_bytes"}`` (None
    where it cannot be measured), and the call to time next."""
    holder = {"state": state}

    def call():
        # Each call gets the state the last one returned: the step donates (frees) its input.
        holder["state"], _ = jax.block_until_ready(compiled(holder["state"], batch))

    with PeakRss() as rss:  # the warm-up call allocates the step's buffers
        (first,) = timed_calls(call, 1)
    return {"first_call_s": first, "measured_rss_growth_bytes": rss.growth_bytes}, call


def set_times(record: dict[str, Any], times: list[float]) -> None:
    """``record``'s ``step_times_s`` and their ``median_s`` / ``min_s`` (None when empty)."""
    stats = summary(times)
    record.update(step_times_s=times, median_s=stats["median_s"], min_s=stats["min_s"])


def measure(method: str, timesteps: int, config: Config, *, timed: bool) -> tuple[dict[str, Any], Callable[[], None] | None]:
    """One record: compile the step of ``method`` at T = ``timesteps`` and its memory; if ``timed``
    a warm-up call and, unless ``config.interleave``, ``config.repeats`` timed calls (none when
    the warm-up call exceeded ``config.step_time_limit``). Returns the record and the step's call
    when its timed calls are still to be made (interleaved), else None."""
    training = build_step(method, timesteps, config)
    batch = make_batch(config)
    start = time.perf_counter()
    compiled = training.step.lower(training.state, batch).compile()
    record: dict[str, Any] = {"method": method, "timesteps": timesteps, "compile_s": time.perf_counter() - start}
    record.update(memory_record(compiled))
    if not timed:
        return record, None
    warm, call = warm_up(compiled, training.state, batch)
    record.update(warm)
    if warm["first_call_s"] > config.step_time_limit:
        set_times(record, [])
        return record, None
    if config.interleave:
        return record, call
    set_times(record, timed_calls(call, config.repeats))
    return record, None


def time_in_rounds(pending: Sequence[tuple[dict[str, Any], Callable[[], None]]], repeats: int, log: Callable[[str], None]) -> None:
    """``repeats`` rounds, each timing one call of every pending step, forward and backward in
    turn (a drift within a round then favours no T); fills each record's times."""
    times: list[list[float]] = [[] for _ in pending]
    order = list(range(len(pending)))
    for r in range(repeats):
        for i in order if r % 2 == 0 else order[::-1]:
            times[i] += timed_calls(pending[i][1], 1)
        log(
            f"round {r + 1}/{repeats}: "
            + "  ".join(f"T={rec['timesteps']} {t[-1]:.3f} s" for (rec, _), t in zip(pending, times, strict=True))
        )
    for (record, _), t in zip(pending, times, strict=True):
        set_times(record, t)


def step_ratios(records: Sequence[dict[str, Any]], method: str, interleaved: bool) -> list[dict[str, Any]]:
    """The step time's growth between consecutive timed T of ``method``: ``{"from", "to", "ratio"}``,
    the median over rounds of each round's ratio when ``interleaved``, else the ratio of medians."""
    timed = [r for r in records if r["method"] == method and r.get("median_s") is not None]
    ratios = []
    for a, b in itertools.pairwise(timed):
        if interleaved:
            ratio = statistics.median(tb / ta for ta, tb in zip(a["step_times_s"], b["step_times_s"], strict=True))
        else:
            ratio = b["median_s"] / a["median_s"]
        ratios.append({"from": a["timesteps"], "to": b["timesteps"], "ratio": ratio})
    return ratios


def summarize(records: Sequence[dict[str, Any]], config: Config) -> dict[str, Any]:
    """Peak-memory ratios: each method's largest T over its smallest and over the T before it,
    BPTT over online at the largest T, and whether the paper's claim holds here."""
    peak = {(r["method"], r["timesteps"]): r["peak_bytes"] for r in records}
    t_min, t_max = config.timesteps[0], config.timesteps[-1]
    t_prev = config.timesteps[-2] if len(config.timesteps) > 1 else t_min
    summary: dict[str, Any] = {
        "t_min": t_min,
        "t_prev": t_prev,
        "t_max": t_max,
        "peak_ratio_tmax_over_tmin": {m: peak[m, t_max] / peak[m, t_min] for m in config.methods},
        "peak_ratio_tmax_over_tprev": {m: peak[m, t_max] / peak[m, t_prev] for m in config.methods},
    }
    summary["step_ratios"] = {m: step_ratios(records, m, config.interleave) for m in config.methods}
    if {"bptt", "online"} <= set(config.methods):
        online_growth = summary["peak_ratio_tmax_over_tmin"]["online"]
        summary["bptt_over_online_at_tmax"] = peak["bptt", t_max] / peak["online", t_max]
        summary["claim_holds"] = online_growth <= TARGET_ONLINE_GROWTH < summary["peak_ratio_tmax_over_tmin"]["bptt"]
    return summary


def run(config: Config, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Measures every (method, T) of ``config``; returns ``{"machine", "config", "records", "summary", "runtime_s"}``.

    Memory is reported for every T; a method stops being timed after a warm-up call over
    ``config.step_time_limit`` (its larger T would be slower still). With ``config.interleave``
    the timed calls run after every step is compiled, in rounds (``time_in_rounds``).
    """
    start = time.perf_counter()
    info = machine_info()
    records, pending = [], []
    for method in config.methods:
        timing = True
        for t in config.timesteps:
            record, call = measure(method, t, config, timed=timing and t <= config.time_max_t)
            timing = timing and record.get("first_call_s", 0.0) <= config.step_time_limit
            records.append(record)
            if call is not None:
                pending.append((record, call))
            log(_progress_line(record))
            gc.collect()
    if pending:
        time_in_rounds(pending, config.repeats, log)
    return {
        "machine": info,
        "config": dataclasses.asdict(config),
        "records": records,
        "summary": summarize(records, config),
        "runtime_s": time.perf_counter() - start,
    }


def _progress_line(record: dict[str, Any]) -> str:
    step = _fmt_time(record)
    return (
        f"{record['method']:>15} T={record['timesteps']:<3} peak {record['peak_bytes'] / MIB:9.1f} MiB  "
        f"compile {record['compile_s']:6.1f} s  step {step}"
    )


def _fmt_time(record: dict[str, Any]) -> str:
    """The median step time, the warm-up call's alone when it was over the limit, '-' when not run."""
    if record.get("median_s") is not None:
        return f"{record['median_s']:.3f} s"
    if "first_call_s" in record:
        return f"{record['first_call_s']:.1f} s (1 call)"
    return "-"


def _fmt_mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def print_table(result: dict[str, Any], console: Console) -> None:
    """The records as a table, then the summary lines."""
    config = result["config"]
    title = (
        f"{config['model']}, batch {config['batch_size']}, LIF {config.get('lif', 'autodiff')}, remat {config.get('remat')}: "
        "peak memory (XLA) and step time"
    )
    table = Table(title=title)
    for name in ("method", "T", "peak MiB", "temp MiB", "args MiB", "measured MiB", "compile s", "step s (median)", "min s"):
        table.add_column(name, justify="left" if name == "method" else "right")
    for r in result["records"]:
        table.add_row(
            r["method"],
            str(r["timesteps"]),
            _fmt_mib(r["peak_bytes"]),
            _fmt_mib(r["temp_bytes"]),
            _fmt_mib(r["argument_bytes"]),
            _fmt_mib(r.get("measured_rss_growth_bytes")),
            f"{r['compile_s']:.1f}",
            _fmt_time(r),
            "-" if r.get("min_s") is None else f"{r['min_s']:.3f}",
        )
    console.print(table)
    for line in summary_lines(result["summary"]):
        console.print(line)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary in words."""
    t_min, t_prev, t_max = summary["t_min"], summary["t_prev"], summary["t_max"]
    lines = [
        f"{method}: peak memory T={t_max} / T={t_min} = {summary['peak_ratio_tmax_over_tmin'][method]:.2f}x, "
        f"T={t_max} / T={t_prev} = {summary['peak_ratio_tmax_over_tprev'][method]:.2f}x"
        for method in summary["peak_ratio_tmax_over_tmin"]
    ]
    for method, ratios in summary.get("step_ratios", {}).items():
        if ratios:
            growth = ", ".join(f"T={r['from']}->{r['to']} {r['ratio']:.2f}x" for r in ratios)
            lines.append(f"{method}: step time {growth}")
    if "bptt_over_online_at_tmax" in summary:
        lines.append(
            f"BPTT / online peak memory at T={t_max}: {summary['bptt_over_online_at_tmax']:.1f}x "
            "(BSO paper, CIFAR-10 VGG-11 at T=35: 58 GB / 2.9 GB = 20x)"
        )
        verdict = "holds" if summary["claim_holds"] else "does NOT hold"
        lines.append(f"claim 'online memory within {TARGET_ONLINE_GROWTH - 1:.0%} of T={t_min} at T={t_max} while BPTT grows': {verdict}")
    return lines


def plot(result: dict[str, Any], path: Path) -> None:
    """Two panels over T (log2 axis): peak memory and step time, one line per method.

    A step timed by its warm-up call only (over the time limit) is an open marker.
    """
    timesteps = result["config"]["timesteps"]
    fig = Figure(figsize=(11, 4.2), layout="tight")
    ax_mem, ax_time = fig.subplots(1, 2)
    ax_time.set_ylim(*_decades([r.get("first_call_s") for r in result["records"]]))
    ax_mem.set_ylim(*_decades([r["peak_bytes"] / MIB for r in result["records"]]))
    for i, method in enumerate(result["config"]["methods"]):
        color = f"C{i}"
        rows = [r for r in result["records"] if r["method"] == method]
        peaks = [r["peak_bytes"] / MIB for r in rows]
        ax_mem.plot([r["timesteps"] for r in rows], peaks, "o-", color=color, label=LABELS[method])
        timed = [r for r in rows if r.get("median_s") is not None]
        ax_time.plot([r["timesteps"] for r in timed], [r["median_s"] for r in timed], "o-", color=color, label=LABELS[method])
        once = [r for r in rows if r.get("median_s") is None and "first_call_s" in r]
        ax_time.plot([r["timesteps"] for r in once], [r["first_call_s"] for r in once], "o", mfc="none", color=color)
    timed_any = any(r.get("first_call_s") for r in result["records"])
    for ax, ylabel in ((ax_mem, "peak memory (MiB, XLA buffer assignment)"), (ax_time, "step time (s, median)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(timesteps, [str(t) for t in timesteps])
        if ax is ax_mem or timed_any:  # a log axis needs data: an untimed run leaves the time panel empty
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("time steps T")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_mem.legend()
    config = result["config"]
    ax_time.set_title(
        f"timed for T <= {config['time_max_t']}; open marker: warm-up call only (> {config['step_time_limit']:g} s)",
        fontsize=9,
    )
    machine = result["machine"]
    fig.suptitle(
        f"{config['model']}, batch {config['batch_size']}: BPTT vs online training ({machine['backend']}, {machine['cpu_count']} CPU cores)"
    )
    fig.savefig(path, dpi=120)


def _decades(values: Sequence[float | None]) -> tuple[float, float] | tuple[None, None]:
    """Axis limits at the powers of ten around ``values`` (None entries ignored), so both ends are labelled."""
    values = [v for v in values if v]
    if not values:
        return None, None
    return 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))


def save(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Writes ``<out>.json`` and ``<out>.png``; returns their paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out.with_suffix(".json"), out.with_suffix(".png")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, png_path)
    return json_path, png_path


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_config(argv: Sequence[str] | None = None) -> tuple[Config, Path]:
    """The command line as a ``Config`` and the output path stem; bad values exit with a message."""
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=defaults.model, help=f"one of {sorted(models.FAMILIES)}")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--timesteps", type=_int_list, default=defaults.timesteps, help="comma-separated, increasing")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed calls after the warm-up call")
    parser.add_argument("--methods", type=_name_list, default=defaults.methods, help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--time-max-t", type=int, default=defaults.time_max_t, help="time only T up to this (0: none)")
    parser.add_argument("--step-time-limit", type=float, default=defaults.step_time_limit, help="seconds; see Config")
    parser.add_argument("--input-shape", type=_int_list, default=None, help="H,W,C (default: the model's)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--lif", default=defaults.lif, help=f"the LIF's backward, one of {sorted(LIF_BACKWARDS)}")
    parser.add_argument("--remat", default=defaults.remat, help=f"model.remat, one of {sorted(REMAT_CHOICES)}")
    parser.add_argument("--interleave", action="store_true", help="time in rounds over every timed step (see Config)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "online_memory", help="writes OUT.json, OUT.png")
    args = parser.parse_args(argv)
    try:
        config = Config(
            model=args.model,
            batch_size=args.batch_size,
            timesteps=args.timesteps,
            repeats=args.repeats,
            methods=args.methods,
            time_max_t=args.time_max_t,
            step_time_limit=args.step_time_limit,
            input_shape=args.input_shape,
            seed=args.seed,
            lif=args.lif,
            remat=args.remat,
            interleave=args.interleave,
        )
    except ValueError as error:
        parser.error(str(error))
    return config, args.out


def main(argv: Sequence[str] | None = None) -> int:
    """Measures what the command line asks, writes the JSON and the plot, prints the table."""
    config, out = parse_config(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log file: do not squeeze the table into 80 columns
    result = run(config, log=console.print)
    json_path, png_path = save(result, out)
    print_table(result, console)
    console.print(f"runtime {result['runtime_s']:.0f} s; wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
