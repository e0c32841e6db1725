"""Does another framework read our NIR export as we run it? snnTorch's importer against bsnn_jax.

    python -m bsnn_jax.export.nir_interop --workdir runs/demo_bsnn [--examples N]

exports the run's checkpoint with ``export.nir.to_nir`` at ``dt = 1e-4`` (snnTorch's
``import_from_nir`` integrates its LIF at that fixed step: ``beta = 1 - dt / tau``), loads the
graph with ``snntorch.import_nir.import_from_nir``, runs it image by image (NIR shapes are
unbatched, so its ``Flatten(start_dim=0)`` would fold a batch axis in) for T steps, and prints
the fraction of test images on which the argmax of its summed logits is bsnn_jax's prediction.

Needs ``torch`` (CPU) and ``snntorch``: ``make test-interop`` installs them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bsnn_jax.export.api import batched_logits, mean_logits_fn
from bsnn_jax.export.nir import to_nir

SNNTORCH_DT = 1e-4


def snntorch_agreement(workdir: str, *, examples: int | None = None, best: bool = False, log_every: int = 1000) -> dict:
    """``{"examples", "agreement", "max_abs_logit_diff", "bsnn_jax_accuracy", "snntorch_accuracy", "seconds"}``."""
    import snntorch.utils
    import torch
    from snntorch.import_nir import import_from_nir

    from bsnn_jax.data.base import read_batch
    from bsnn_jax.train.restore import restore

    restored = restore(workdir, best=best)
    dataset, steps = restored.dataset, restored.config.model.timesteps
    n = len(dataset.test) if examples is None else min(examples, len(dataset.test))
    records = read_batch(dataset.test, range(n))
    images = np.stack([r["image"] for r in records]).astype(np.float32)
    labels = np.array([r["label"] for r in records])
    ours = batched_logits(mean_logits_fn(restored.model), dataset.normalization(images), 256)
    net = import_from_nir(to_nir(restored, dt=SNNTORCH_DT))  # the graph takes raw images: normalization is its first node
    start, theirs = time.perf_counter(), []
    with torch.no_grad():
        for i, image in enumerate(images):
            snntorch.utils.reset(net)
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
            theirs.append(sum(net(x)[0] for _ in range(steps)).numpy() / steps)
            if log_every and (i + 1) % log_every == 0:
                print(f"  {i + 1}/{n} images ({time.perf_counter() - start:.0f} s)", flush=True)
    theirs = np.stack(theirs)
    return {
        "examples": n,
        "agreement": float(np.mean(theirs.argmax(-1) == ours.argmax(-1))),
        "max_abs_logit_diff": float(np.abs(theirs - ours).max()),
        "bsnn_jax_accuracy": float(np.mean(ours.argmax(-1) == labels)),
        "snntorch_accuracy": float(np.mean(theirs.argmax(-1) == labels)),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="a run written by bsnn train (vanilla BSNN or FP-SNN)")
    parser.add_argument("--examples", type=int, default=None, help="the first N test images (default: all)")
    parser.add_argument("--best", action="store_true", help="the best checkpoint instead of the latest")
    args = parser.parse_args(argv)
    result = snntorch_agreement(args.workdir, examples=args.examples, best=args.best)
    print(json.dumps(result, indent=2))
    print(
        f"snnTorch's import_from_nir predicts bsnn_jax's class on {100 * result['agreement']:.2f}% of {result['examples']} "
        f"test images (max |logit difference| {result['max_abs_logit_diff']:.2e})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
