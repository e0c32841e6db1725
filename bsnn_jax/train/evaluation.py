"""Scoring on the test split.

The test split is read in fixed-size batches (one compiled evaluation step); the last batch is
padded, and a ``mask`` keeps the padding out of every sum, so each test record counts exactly
once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from bsnn_jax import data as data_lib
from bsnn_jax.train import mesh as mesh_lib


@dataclasses.dataclass(frozen=True)
class EvalSplit:
    """The test records this process reads: ``steps`` batches of ``batch_per_host``."""

    loader: data_lib.Loader
    steps: int
    batch_per_host: int


def eval_split(dataset: data_lib.Dataset, config: ml_collections.ConfigDict) -> EvalSplit:
    """The test split of ``dataset`` in batches of ``config.eval_batch_size`` (global)."""
    hosts = jax.process_count()
    batch = config.eval_batch_size // hosts
    loader = data_lib.make_loader(
        dataset,
        "test",
        batch_size=config.eval_batch_size,
        num_threads=config.dataset.num_threads,
        prefetch_batches=config.dataset.prefetch_batches,
    )
    return EvalSplit(loader, math.ceil(math.ceil(dataset.info.num_test / hosts) / batch), batch)


def pad_batch(batch: dict[str, np.ndarray] | None, template: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Pads a (possibly missing) batch to ``size`` examples, with a ``mask`` of the real ones."""
    if batch is None:
        n = 0
        batch = {k: v[:0] for k, v in template.items()}
    else:
        n = len(batch["label"])
    out = {}
    for k, v in batch.items():
        pad = np.zeros((size - n,) + v.shape[1:], v.dtype)
        out[k] = np.concatenate([v, pad]) if n < size else v
    out["mask"] = (np.arange(size) < n).astype(np.float32)
    return out


def evaluate_split(eval_step, params: Any, model_state: Any, split: EvalSplit, mesh: Mesh) -> dict[str, Any]:
    """Test loss, accuracy (prediction = mean over T of the logits) and firing rates over the
    whole split; ``eval_step`` is ``step.make_eval_step(..., firing_rates=True)``."""
    sums, template = None, None
    it = iter(split.loader)
    for _ in range(split.steps):
        batch = next(it, None)
        if template is None:
            template = batch
        out = eval_step(params, model_state, mesh_lib.shard_batch(pad_batch(batch, template, split.batch_per_host), mesh))
        sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
    sums = {k: float(v) for k, v in jax.device_get(sums).items()}
    count = max(sums.pop("count"), 1.0)
    result = {"test_loss": sums.pop("loss") / count, "test_accuracy": sums.pop("correct") / count}
    if "spikes/all" in sums:
        result["firing_rate"] = sums.pop("spikes/all") / count
        result["firing_rates"] = {k.removeprefix("spikes/"): v / count for k, v in sums.items()}
    return result
