"""Batched inference throughput (images/s) of the packed ``.bsnn`` path vs the float model.

    python benchmarks/export_throughput.py --workdir runs/demo        # a trained demo run
    python benchmarks/export_throughput.py                             # the demo architecture, untrained

Both sides run the same jitted ``mean over T of model(x)`` on normalized Fashion-MNIST-shaped
input (28x28x1, T=2, small_cnn AGMM): the float model as trained (binarize + conv + BN), the
packed one from its 1-bit kernels (unpacked inside the jitted call) with BN folded. The time
per batch is the median of ``--repeats`` calls after one compiling call; the machine may be
shared, so compare the two columns of one run rather than runs. Writes a JSON (default
``benchmarks/results/export_throughput.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from rich.console import Console
from rich.table import Table

from bsnn_jax import export, models

DEMO = dict(name="small_cnn", variant="agmm", timesteps=2, num_classes=10, input_shape=[28, 28, 1], neuron={})


def _demo_model(workdir: str | None):
    """``(float model in eval mode, description)`` of a trained run, or the untrained demo architecture."""
    if workdir is None:
        spec = {**DEMO, "input_shape": tuple(DEMO["input_shape"])}
        model = models.create(spec.pop("name"), **spec)
        model.eval()
        return model, DEMO
    from bsnn_jax.train.restore import restore

    restored = restore(workdir)
    return restored.model, restored.description


def _images_per_second(forward, x: np.ndarray, repeats: int) -> float:
    jax.block_until_ready(forward(x))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(forward(x))
        times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None, help="a trained demo run (default: the untrained demo architecture)")
    parser.add_argument("--batch-sizes", default="32,256", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (median)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "export_throughput.json"))
    args = parser.parse_args()

    model, description = _demo_model(args.workdir)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.bsnn"
        info = export.save(model, description, path)
        packed = export.load(path)
    float_forward, packed_forward = export.mean_logits_fn(model), export.mean_logits_fn(packed.module)
    rng = np.random.default_rng(0)
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        x = rng.normal(size=(batch, *description["input_shape"])).astype(np.float32)
        float_ips = _images_per_second(float_forward, x, args.repeats)
        packed_ips = _images_per_second(packed_forward, x, args.repeats)
        rows.append({"batch_size": batch, "float_images_per_s": float_ips, "packed_images_per_s": packed_ips, "speedup": packed_ips / float_ips})

    result = {
        "model": description,
        "trained_run": args.workdir,
        "file_bytes": info["file_bytes"],
        "report_bytes": info["report_bytes"],
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "machine": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    table = Table(title=f"{description['name']} ({description['variant']}), T={description['timesteps']}: inference throughput, {jax.default_backend()}")
    for col in ("batch", "float model (img/s)", "packed .bsnn (img/s)", "packed / float"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["batch_size"]), f"{r['float_images_per_s']:,.0f}", f"{r['packed_images_per_s']:,.0f}", f"{r['speedup']:.2f}x")
    console = Console()
    console.print(table)
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
