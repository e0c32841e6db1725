"""Sequential Fashion-MNIST (one image row per time step, T=28, F=28): the binary spiking MLP against
the full-precision spiking MLP and a GRU and an LSTM of about the same parameter count, all trained
the same way (the configs' data, loss, optimizer, schedule, batch, epochs and seed, through ``train.fit``).

    python -m experiments.seq_fashion --out experiments/results/seq_fashion --runs runs/seq_fashion

The GRU and LSTM (``nnx.GRUCell`` / ``nnx.LSTMCell`` over the steps, a linear read-out at every
step, so their logits are ``[T, B, K]`` like a spiking net's) are registered as model families for
the duration of the run only. Writes ``OUT/report.md`` and ``OUT/results.json`` (accuracy, parameters,
size as the papers count it, training minutes); the runs go to ``RUNS/<model>``, where a finished
run is reused and an interrupted one resumed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from pathlib import Path

import jax
from flax import nnx
from rich.console import Console

from bsnn_jax import configs, data, models, train
from bsnn_jax.metrics import model_size
from bsnn_jax.models.registry import Family
from experiments.ablation import _rows

# Hidden widths giving about the spiking MLP's 142k parameters: GRU 3 (F h + h^2 + 2 h) + 11 h,
# LSTM 4 (F h + h^2 + h) + 11 h with F = 28 (nnx.GRUCell/LSTMCell biases as Flax defines them).
BASELINE_HIDDEN = {"gru": 200, "lstm": 172}
METHODS = {
    "bsnn": ("binary spiking MLP (AGMM)", "seq_fashion_mlp", None),
    "fp_snn": ("full-precision spiking MLP", "seq_fashion_mlp_fp", None),
    "rmlp": ("binary recurrent spiking MLP (AGMM)", "seq_fashion_rmlp", None),
    "gru": (f"GRU ({BASELINE_HIDDEN['gru']} units)", "seq_fashion_mlp_fp", "seq_gru"),
    "lstm": (f"LSTM ({BASELINE_HIDDEN['lstm']} units)", "seq_fashion_mlp_fp", "seq_lstm"),
}


class RecurrentBaseline(nnx.Module):
    """``[T, B, *input_shape]`` -> logits ``[T, B, K]``: a GRU or LSTM over the flattened steps, read out at every step."""

    def __init__(self, cell: str, hidden: int, input_shape, num_classes: int, opts: models.NetOptions, *, rngs: nnx.Rngs):
        features = math.prod(input_shape)
        make = {"gru": nnx.GRUCell, "lstm": nnx.LSTMCell}[cell]
        self.cell = make(features, hidden, rngs=rngs)
        self.fc = nnx.Linear(hidden, num_classes, rngs=rngs)
        self.timesteps = opts.timesteps

    def __call__(self, x: jax.Array) -> jax.Array:
        # A Python loop over the steps rather than nnx.RNN's scan: the library's evaluation records
        # intermediates with nnx.capture, which nnx.RNN's scan carry does not accept.
        x = x.reshape(x.shape[:2] + (-1,))
        carry = self.cell.initialize_carry(x.shape[1:], rngs=nnx.Rngs(0))  # zeros: the key is not used
        outputs = []
        for step in x:
            carry, y = self.cell(carry, step)
            outputs.append(y)
        return self.fc(jax.numpy.stack(outputs))


@contextlib.contextmanager
def baseline_families():
    """``seq_gru`` and ``seq_lstm`` in ``models.FAMILIES`` while the block runs."""
    added = {
        f"seq_{cell}": Family(lambda cell=cell, **kw: RecurrentBaseline(cell, BASELINE_HIDDEN[cell], **kw), (1, 1, 28), 10, cell)
        for cell in BASELINE_HIDDEN
    }
    models.FAMILIES.update(added)
    try:
        yield
    finally:
        for name in added:
            models.FAMILIES.pop(name)


def run_config(method: str, epochs: int | None, seed: int):
    _, config_name, family = METHODS[method]
    c = configs.get(config_name)
    c.name = f"seq_fashion-{method}"
    c.seed = seed
    c.num_epochs = epochs or c.num_epochs
    c.progress = False
    if family is not None:
        c.model.name = family
    return c


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="experiments/results/seq_fashion", type=Path)
    parser.add_argument("--runs", default="runs/seq_fashion", type=Path, help="the training runs' directories")
    parser.add_argument("--epochs", type=int, default=None, help="default: the configs' own (2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args(argv)
    console = Console()
    results = {}
    with baseline_families():
        for method in args.methods:
            workdir = args.runs / method
            console.print(f"[bold]{METHODS[method][0]}[/] -> {workdir}")
            summary = train.fit(run_config(method, args.epochs, args.seed), workdir, console=console)
            results[method] = {"summary": summary, "rows": _rows(workdir)}
    write_report(args, results)
    console.print((args.out / "report.md").read_text())
    return 0


def write_report(args, results) -> None:
    """``OUT/report.md`` and ``OUT/results.json`` of the methods just run, beside the other methods'
    rows an earlier run left in ``OUT/results.json`` (a method run again replaces its own row)."""
    saved = args.out / "results.json"
    out = json.loads(saved.read_text()) if saved.is_file() else {}
    info = data.load("seq_fashion_mnist").info
    with baseline_families():
        for method, r in results.items():
            model = nnx.eval_shape(lambda m=method: train.setup.create_model(run_config(m, args.epochs, args.seed), info))
            minutes = sum(row["train_seconds"] for row in r["rows"]) / 60
            out[method] = {"test_accuracy": r["summary"]["test_accuracy"], "size": model_size(model).to_dict(), "train_minutes": minutes}
    table = ["| model | test accuracy % | parameters | binary parameters | size (MB) | training minutes |", "|---|---|---|---|---|---|"]
    for method in (m for m in METHODS if m in out):
        row, size = out[method], out[method]["size"]
        table.append(
            f"| {METHODS[method][0]} | {100 * row['test_accuracy']:.2f} | {size['total_params']:,} | {size['binary_params']:,} "
            f"| {size['size_mb']:.4f} | {row['train_minutes']:.1f} |"
        )
    c = run_config("bsnn", args.epochs, args.seed)
    text = f"""# Sequential Fashion-MNIST: binary SNN vs FP SNN vs GRU / LSTM

One image row per time step (T=28, F=28); every model: loss {c.loss.name}, {c.optimizer.name} lr {c.optimizer.learning_rate} with
{c.schedule.name} decay, batch {c.batch_size}, {c.num_epochs} epochs, seed {args.seed}, test accuracy after the last epoch.
Size counts 1 bit per binary weight and 32 bits per other parameter (``bsnn_jax.metrics.model_size``).
Command: `python -m experiments.seq_fashion --out {args.out}{f" --epochs {args.epochs}" if args.epochs else ""}`, with
`--methods` for a subset, each run replacing its own rows (on a shared 2-core CPU: training minutes are one noisy run).

{chr(10).join(table)}
"""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    raise SystemExit(main())
