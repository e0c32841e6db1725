"""Does another framework read our NIR export as we run it? snnTorch's importer against bsnn_jax.

    python -m bsnn_jax.export.nir_interop --workdir runs/demo_bsnn [--examples N]

exports the run's checkpoint with ``export.nir.to_nir`` at ``dt = 1e-4`` (snnTorch's
``import_from_nir`` integrates its LIF at that fixed step: ``beta = 1 - dt / tau``), loads the
graph with ``snntorch.import_nir.import_from_nir``, runs it on batches of ``--batch-size`` images
for T steps, and prints the fraction of test images on which the argmax of its summed logits is
bsnn_jax's prediction. NIR shapes are unbatched, and snnTorch hands the graph's
``Flatten(start_dim=0)`` to ``torch.nn.Flatten`` as it is, which would fold the batch axis into
the features: ``batch_flatten`` moves each imported ``Flatten`` one axis on (``start_dim=1``);
nothing else of snnTorch's model is touched (its Conv2d, AvgPool2d, Linear and Leaky take [B, ...]).

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


def batch_flatten(net) -> int:
    """Makes snnTorch's imported ``torch.nn.Flatten`` modules keep a leading batch axis; returns how many it changed."""
    import torch

    flattens = [m for m in net.modules() if isinstance(m, torch.nn.Flatten) and m.start_dim >= 0]
    for m in flattens:
        m.start_dim += 1
    return len(flattens)


def snntorch_logits(net, images: np.ndarray, steps: int, *, batch_size: int = 500, log_every: int = 1000) -> np.ndarray:
    """Mean over ``steps`` of the logits of snnTorch's imported ``net`` (after ``batch_flatten``) on ``images`` [N, H, W, C]."""
    import snntorch.utils
    import torch

    start, out = time.perf_counter(), []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            snntorch.utils.reset(net)
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size].transpose(0, 3, 1, 2)))
            out.append((sum(net(x)[0] for _ in range(steps)) / steps).numpy())
            done = min(i + batch_size, len(images))
            if log_every and done // log_every > i // log_every:
                print(f"  {done}/{len(images)} images ({time.perf_counter() - start:.0f} s)", flush=True)
    return np.concatenate(out)


def snntorch_agreement(
    workdir: str, *, examples: int | None = None, best: bool = False, batch_size: int = 500, log_every: int = 1000
) -> dict:
    """``{"examples", "agreement", "max_abs_logit_diff", "logits_within_1e-4", "bsnn_jax_accuracy", "snntorch_accuracy",
    "seconds"}``: ``agreement`` is the fraction of equal predicted classes, ``logits_within_1e-4`` of examples whose
    mean logits all agree to 1e-4 (the rest differ by a spike that float rounding at the threshold fired in one only)."""
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
    batch_flatten(net)
    start = time.perf_counter()
    theirs = snntorch_logits(net, images, steps, batch_size=batch_size, log_every=log_every)
    return {
        "examples": n,
        "agreement": float(np.mean(theirs.argmax(-1) == ours.argmax(-1))),
        "max_abs_logit_diff": float(np.abs(theirs - ours).max()),
        "logits_within_1e-4": float(np.mean(np.abs(theirs - ours).max(axis=-1) <= 1e-4)),
        "bsnn_jax_accuracy": float(np.mean(ours.argmax(-1) == labels)),
        "snntorch_accuracy": float(np.mean(theirs.argmax(-1) == labels)),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="a run written by bsnn train (vanilla BSNN or FP-SNN)")
    parser.add_argument("--examples", type=int, default=None, help="the first N test images (default: all)")
    parser.add_argument("--best", action="store_true", help="the best checkpoint instead of the latest")
    parser.add_argument("--batch-size", type=int, default=500, help="images per snnTorch forward pass")
    args = parser.parse_args(argv)
    result = snntorch_agreement(args.workdir, examples=args.examples, best=args.best, batch_size=args.batch_size)
    print(json.dumps(result, indent=2))
    print(
        f"snnTorch's import_from_nir predicts bsnn_jax's class on {100 * result['agreement']:.2f}% of {result['examples']} "
        f"test images (max |logit difference| {result['max_abs_logit_diff']:.2e})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
