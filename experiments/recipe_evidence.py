"""Evidence that every BSO Table 2 row trains with the released code's recipe: runs

    bsnn train --config ROW --config.num_epochs=1 --config.steps_per_epoch=2

for each row on stand-in data written here, and tabulates the recipe fields of the resolved
``config.json`` each run wrote.

    python -m experiments.recipe_evidence                 # all rows -> benchmarks/results/recipe_evidence.md
    python -m experiments.recipe_evidence --rows cifar10_vgg11_tbso_t2

Stand-in data: CIFAR-10/100 and ImageNet as tiny tfds datasets in tfds's real prepared format
(array_record, PNG/JPEG records), so the rows' own input pipelines run: AutoAugment and Cutout
on CIFAR, RandomResizedCrop 224 + flip on ImageNet. DVS-CIFAR10 as an ``npz:`` file of
10-frame event tensors (48x48x2), since tonic's CIFAR10-DVS release format would need an AEDAT4
writer: ``dataset.dvs_augmentation`` is then recorded in config.json but not applied (an npz
dataset has no augmentation). Batches of 2 examples keep every row to minutes on a CPU; the
models, optimizers, schedules and traces are the rows' own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bsnn_jax.configs.bso_table2 import BSO_ROWS
from bsnn_jax.data.standin import encode_image, write_tfds

ROOT = Path(__file__).resolve().parents[1]
# The recipe fields that differ between the paper text, the released code and our defaults.
FIELDS = (
    "optimizer.binary",
    "optimizer.flip.threshold",
    "optimizer.flip.decay_every_epochs",
    "optimizer.flip.decay_factor",
    "optimizer.flip.reset_momentum",
    "optimizer.flip.eps_outside_sqrt",
    "optimizer.learning_rate",
    "schedule.name",
    "train.trace",
    "dataset.autoaugment",
    "dataset.cutout",
    "dataset.dvs_augmentation",
    "model.name",
    "model.stem",
    "model.timesteps",
)
TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet2012"}
TFDS_SPLITS = {"cifar10": ("train", "test"), "cifar100": ("train", "test"), "imagenet": ("train", "validation")}


def _examples(dataset: str, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` records of ``dataset``'s tfds features: random images, labels 0..n-1."""
    if dataset == "imagenet":
        images = [rng.integers(0, 256, (rng.integers(40, 80), rng.integers(40, 80), 3), dtype=np.uint8) for _ in range(n)]
        return [{"image": encode_image(im, "JPEG"), "label": i, "file_name": f"n{i}.JPEG"} for i, im in enumerate(images)]
    examples = [
        {"id": f"x{i}", "image": encode_image(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "PNG"), "label": i} for i in range(n)
    ]
    if dataset == "cifar100":
        for example in examples:
            example["coarse_label"] = example["label"]
    return examples


def write_standin_tfds(dataset: str, data_dir: Path, n_train: int = 4, n_test: int = 2) -> None:
    """A tiny prepared tfds ``dataset`` under ``data_dir`` of random records (``data.standin``)."""
    examples = _examples(dataset, n_train + n_test, np.random.default_rng(0))
    train, test = TFDS_SPLITS[dataset]
    write_tfds(TFDS_NAMES[dataset], data_dir, {train: examples[:n_train], test: examples[n_train:]})


def write_dvs_npz(path: Path, timesteps: int = 10, n_train: int = 4, n_test: int = 2) -> None:
    """DVS-CIFAR10-shaped event frames ``[N, T, 48, 48, 2]`` with labels, as an ``npz:`` dataset."""
    rng = np.random.default_rng(0)
    frames = lambda n: rng.poisson(0.3, (n, timesteps, 48, 48, 2)).astype(np.float32)  # noqa: E731
    np.savez(path, x_train=frames(n_train), y_train=np.arange(n_train) % 10, x_test=frames(n_test), y_test=np.arange(n_test) % 10)


def data_overrides(dataset: str, folder: Path) -> list[str]:
    """The stand-in of ``dataset`` under ``folder`` (written on first use) as ``--config`` overrides."""
    if dataset == "dvs_cifar10":
        path = folder / "dvs_cifar10.npz"
        if not path.exists():
            write_dvs_npz(path)
        return [f"--config.dataset.name=npz:{path}"]
    if not (folder / TFDS_NAMES[dataset]).exists():
        write_standin_tfds(dataset, folder)
    return [f"--config.dataset.data_dir={folder}"]


def command(row: str, workdir: Path, folder: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The issue's evidence command for ``row``, on the stand-in data under ``folder``."""
    args = ["train", "--config", row, "--workdir", str(workdir), "--config.num_epochs=1", "--config.steps_per_epoch=2"]
    args += data_overrides(BSO_ROWS[row]["dataset"], folder)
    return [*args, "--config.batch_size=2", "--config.eval_batch_size=2", "--config.mesh.num_devices=1", *extra]


def resolved(workdir: Path) -> dict:
    """The :data:`FIELDS` of the ``config.json`` a run wrote."""
    config = json.loads((workdir / "config.json").read_text())
    out = {}
    for key in FIELDS:
        value = config
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out


def run_row(row: str, out: Path) -> dict:
    """Runs the evidence command of ``row`` as ``bsnn train`` does (a fresh process)."""
    workdir = out / "runs" / row
    shutil.rmtree(workdir, ignore_errors=True)  # this script's own scratch run: a rerun starts afresh
    args = command(row, workdir, out / "data")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bsnn_jax.cli", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"row": row, "ok": False, "seconds": seconds, "error": proc.stderr.strip().splitlines()[-1:]}
    metrics = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {
        "row": row,
        "ok": True,
        "seconds": seconds,
        "command": "bsnn " + " ".join(args),
        "config": resolved(workdir),
        "epochs": len(metrics),
    }


def report(results: list[dict]) -> str:
    """The markdown table of the resolved recipe fields, one column per row."""
    lines = ["# Recipe evidence: the resolved config.json of each BSO Table 2 row", "", __doc__.strip().split("\n\n")[-1], ""]
    done = [r for r in results if r["ok"]]
    lines += ["| field | " + " | ".join(f"`{r['row']}`" for r in done) + " |", "|---|" + "---|" * len(done)]
    lines += [f"| `{key}` | " + " | ".join(str(r["config"][key]) for r in done) + " |" for key in FIELDS]
    lines += ["| run (s) | " + " | ".join(f"{r['seconds']:.0f}" for r in done) + " |", "", "Commands:", ""]
    lines += [f"    {r['command']}" for r in done]
    lines += [f"\nFAILED `{r['row']}`: {r['error']}" for r in results if not r["ok"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="*", default=list(BSO_ROWS), choices=list(BSO_ROWS), metavar="ROW")
    parser.add_argument(
        "--work", default=Path("runs/recipe_evidence"), type=Path, help="scratch: stand-in data and runs (rerun rows are replaced)"
    )
    parser.add_argument("--out", default=ROOT / "benchmarks" / "results" / "recipe_evidence", type=Path, help="report path (.md, .json)")
    args = parser.parse_args(argv)
    (args.work / "data").mkdir(parents=True, exist_ok=True)
    results = []
    for i, row in enumerate(args.rows, 1):
        print(f"[{i}/{len(args.rows)}] {row} ...", flush=True)
        results.append(run_row(row, args.work))
        print(f"    {'ok' if results[-1]['ok'] else 'FAILED'} in {results[-1]['seconds']:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    args.out.with_suffix(".md").write_text(report(results))
    print(report(results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
