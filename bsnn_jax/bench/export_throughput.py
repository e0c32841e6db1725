"""Batched inference throughput (images/s) of the packed ``.bsnn`` path vs the float model.

    python -m bsnn_jax.bench.export_throughput --workdir runs/demo    # a trained demo run
    python -m bsnn_jax.bench.export_throughput                        # the demo architecture, untrained

Both sides run the same jitted ``mean over T of model(x)`` on normalized Fashion-MNIST-shaped
input (28x28x1, T=2, small_cnn AGMM): the float model as trained (binarize + conv + BN), the
packed one from its 1-bit kernels (unpacked inside the jitted call) with BN folded. The time
per batch is the median of ``--repeats`` calls after one compiling call; the machine may be
shared, so compare the two columns of one run rather than runs. Writes a JSON (default
``benchmarks/results/export_throughput.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import tempfile
from pathlib import Path

import jax
import numpy as np
from rich.console import Console
from rich.table import Table

from bsnn_jax import export, models
from bsnn_jax.bench import RESULTS_DIR
from bsnn_jax.bench.timing import blocked, images_per_second

DEMO = {"name": "small_cnn", "variant": "agmm", "timesteps": 2, "num_classes": 10, "input_shape": [28, 28, 1], "neuron": {}}


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


def run(model, description: dict, batch_sizes: tuple[int, ...], repeats: int) -> tuple[dict, list[dict]]:
    """Exports ``model`` to a temporary ``.bsnn`` file; returns ``export.save``'s size info and,
    per batch size, the images/s of the float model, of the packed one, and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.bsnn"
        info = export.save(model, description, path)
        packed = export.load(path)
    forwards = {"float": export.mean_logits_fn(model), "packed": export.mean_logits_fn(packed.module)}
    rng = np.random.default_rng(0)
    rows = []
    for batch in batch_sizes:
        x = rng.normal(size=(batch, *description["input_shape"])).astype(np.float32)
        rates = {name: images_per_second(functools.partial(blocked, forward, x), batch, repeats) for name, forward in forwards.items()}
        row = {"batch_size": batch, "float_images_per_s": rates["float"], "packed_images_per_s": rates["packed"]}
        rows.append({**row, "speedup": rates["packed"] / rates["float"]})
    return info, rows


def print_table(description: dict, rows: list[dict], console: Console) -> None:
    """The rows as a table: images/s of both models and their ratio per batch size."""
    title = f"{description['name']} ({description['variant']}), T={description['timesteps']}: inference throughput"
    table = Table(title=f"{title}, {jax.default_backend()}")
    for col in ("batch", "float model (img/s)", "packed .bsnn (img/s)", "packed / float"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["batch_size"]), f"{r['float_images_per_s']:,.0f}", f"{r['packed_images_per_s']:,.0f}", f"{r['speedup']:.2f}x")
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    """Measures the demo model (or ``--workdir``'s) at each batch size, writes the JSON, prints a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None, help="a trained demo run (default: the untrained demo architecture)")
    parser.add_argument("--batch-sizes", default="32,256", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (median)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "export_throughput.json"), help="JSON output")
    args = parser.parse_args(argv)

    model, description = _demo_model(args.workdir)
    info, rows = run(model, description, tuple(int(b) for b in args.batch_sizes.split(",")), args.repeats)
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
    console = Console()
    print_table(description, rows, console)
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
