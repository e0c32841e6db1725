"""GFLOP/s of the reference net's 3x3 convolutions, measured alone: forward, input gradient and
weight gradient (``ops.conv2d`` and its ``custom_vjp`` backward, compiled with the library's XLA options),
next to one matmul with the forward's GEMM shape (``[T*B*H*W, 9*C] x [9*C, O]``).

    python -m bsnn_jax.bench.conv_rates [--repeats 9] [--out benchmarks/results/conv_rates.json]

This is where a training step of the reference net spends its time (the convolutions take
about 0.8 s of its ~1 s at T=4, B=32 on the 2-core CPU), so these rates bound what any change
outside the convolution kernels can gain. Forward, input gradient, weight gradient and matmul
are timed in turns, so load from other tenants of a shared machine falls on all four alike;
the median of ``--repeats`` blocked calls of each is reported.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.table import Table

from bsnn_jax.bench import RESULTS_DIR
from bsnn_jax.bench.timing import blocked, machine_info, summary, timed_calls
from bsnn_jax.ops import compiler
from bsnn_jax.ops.conv import conv2d

# (batch T*B, H=W, C_in, C_out) of the reference net's binary convs at T=4, B=32
REFERENCE_CONVS = ((128, 32, 64, 128), (128, 16, 128, 256), (128, 8, 256, 256))


def _conv(x, w):
    return conv2d(x, w, 1, 1)


def _kernels() -> dict:
    """The four measured programs, compiled with the library's options: the convolution and each
    of its gradients alone (``(x, w, g) -> array``; the unused forward output is dropped by XLA),
    and the matmul ``(a, b) -> a @ b``."""
    return {
        "forward": compiler.jit(lambda x, w, g: _conv(x, w)),
        "input_grad": compiler.jit(lambda x, w, g: jax.vjp(lambda x: _conv(x, w), x)[1](g)[0]),
        "weight_grad": compiler.jit(lambda x, w, g: jax.vjp(lambda w: _conv(x, w), w)[1](g)[0]),
        "matmul": compiler.jit(lambda a, b: a @ b),
    }


def measure(shape: tuple[int, int, int, int], repeats: int, seed: int = 0) -> dict:
    """Median seconds and GFLOP/s of each kernel on one conv shape (spike input, +-1 kernel)."""
    n, h, c, o = shape
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.random((n, h, h, c)) < 0.2, jnp.float32)
    w = jnp.asarray(np.sign(rng.standard_normal((3, 3, c, o))), jnp.float32)
    g = jnp.asarray(rng.standard_normal((n, h, h, o)), jnp.float32)
    a = jnp.asarray(rng.standard_normal((n * h * h, 9 * c)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((9 * c, o)), jnp.float32)
    calls = {name: functools.partial(blocked, fn, *((a, b) if name == "matmul" else (x, w, g))) for name, fn in _kernels().items()}
    for call in calls.values():
        call()  # compiles
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():  # in turns: a burst of load falls on every kernel alike
            times[name] += timed_calls(call, 1)
    gflop = 2 * n * h * h * 9 * c * o / 1e9
    record = {"shape": {"batch": n, "size": h, "in": c, "out": o}, "gflop": gflop}
    for name, ts in times.items():
        median = summary(ts)["median_s"]
        record[name] = {"median_s": median, "gflop_per_s": gflop / median}
    return record


def run(shapes=REFERENCE_CONVS, repeats: int = 9) -> dict:
    """``measure`` of every shape, the seconds per training step spent in each kernel kind, and
    the machine and compiler options they ran with."""
    records = [measure(shape, repeats) for shape in shapes]
    total = {k: sum(r[k]["median_s"] for r in records) for k in ("forward", "input_grad", "weight_grad")}
    return {
        "machine": machine_info(),
        "compiler_options": compiler.compiler_options(),
        "repeats": repeats,
        "convs": records,
        "total_s": total,
    }


def main(argv: list[str] | None = None) -> None:
    """Measures the reference net's convolutions, prints their rates and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed calls of each kernel")
    parser.add_argument("--out", default=str(RESULTS_DIR / "conv_rates.json"), help="JSON output")
    args = parser.parse_args(argv)
    result = run(REFERENCE_CONVS, args.repeats)
    records, total = result["convs"], result["total_s"]
    table = Table(title="reference net convolutions (T*B=128), GFLOP/s")
    for column in ("conv", "GFLOP", "forward", "input grad", "weight grad", "matmul (fwd GEMM)"):
        table.add_column(column, justify="right")
    for r in records:
        s = r["shape"]
        rates = [f"{r[k]['gflop_per_s']:.0f}" for k in ("forward", "input_grad", "weight_grad", "matmul")]
        table.add_row(f"{s['size']}x{s['size']} {s['in']}->{s['out']}", f"{r['gflop']:.1f}", *rates)
    console = Console()
    console.print(table)
    parts = ", ".join(f"{k} {v:.3f}" for k, v in total.items())
    console.print(f"seconds per training step in these convolutions: {sum(total.values()):.3f} ({parts})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
