"""Measurements of a trained run directory: SOPs, MACs and energy (AGMM Table 2) and the loss
landscape around its checkpoint (AGMM Fig. 2/7), also drawn into the run's TensorBoard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bsnn_jax.analysis import filter_normalized_direction, loss_surface, plot_landscape
from bsnn_jax.metrics import ENERGY_MODELS, mac_conventions, measure_activity, model_size, operation_counts
from bsnn_jax.train import losses
from bsnn_jax.train.evaluation import eval_split
from bsnn_jax.train.restore import Restored, restore
from bsnn_jax.train.rundir import unused_path
from bsnn_jax.train.step import time_major
from bsnn_jax.train.writers import TENSORBOARD_DIR, TensorBoard


def _test_batches(restored: Restored):
    return eval_split(restored.dataset, restored.config).loader


def _test_images(restored: Restored, max_examples: int | None):
    """Time-major test inputs, at most ``max_examples`` of them."""
    seen = 0
    for batch in _test_batches(restored):
        if max_examples is not None and seen >= max_examples:
            return
        images = batch["image"] if max_examples is None else batch["image"][: max_examples - seen]
        seen += len(images)
        yield jnp.asarray(time_major(images))


def measure_run(workdir: str | Path, *, step: int | None = None, best: bool = False, max_examples: int | None = None) -> dict[str, Any]:
    """Firing rates, SOPs, MACs and energy per inference of a checkpoint, on its test split.

    SOPs and MACs follow AGMM Table 2 (``metrics.operation_counts``); energy is given under both
    ``metrics.ENERGY_MODELS`` (the 45 nm constants the paper cites, and the fit to its table).
    """
    restored = restore(workdir, step=step, best=best)
    model = restored.model
    activity = measure_activity(model, _test_images(restored, max_examples))
    counts = operation_counts(activity)
    return {
        "step": restored.step,
        "model": restored.description,
        "size_mb": model_size(model).size_mb,
        "firing_rates": activity.firing_rates,
        "mean_firing_rate": activity.mean_firing_rate,
        "sops": counts.sops,
        "macs": counts.macs,
        "macs_by_convention": mac_conventions(activity),
        "energy_mj": {m.label: m.energy(counts) * 1e3 for m in ENERGY_MODELS},
        "layers": {
            path: {"input_rate": s.input_rate, "macs_per_step": s.macs_per_step, "spike_input": s.spike_input}
            for path, s in activity.synapses.items()
        },
    }


def landscape_run(
    workdir: str | Path,
    *,
    resolution: int = 21,
    span: float = 1.0,
    examples: int = 1000,
    seed: int = 0,
    step: int | None = None,
    best: bool = False,
    out_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The 2-D filter-normalised loss landscape around a checkpoint (Li et al. 2018).

    The loss (the run's training loss) is evaluated on the first ``examples`` test inputs with
    BatchNorm on its running statistics, on a ``resolution x resolution`` grid of steps in
    ``[-span, span]`` along two random filter-normalised directions. Writes
    ``landscape-step<N>.png`` and ``.npz`` (grid, coordinates) into ``out_dir`` (the workdir by
    default), next to any earlier ones rather than over them. ``progress(rows_done, rows)`` is
    called as grid rows complete (``bsnn landscape`` prints a line for each).
    """
    restored = restore(workdir, step=step, best=best)
    step, config, model_state = restored.step, restored.config, restored.model_state
    images, labels = [], []
    for batch in _test_batches(restored):
        images.append(batch["image"])
        labels.append(batch["label"])
        if sum(len(b) for b in labels) >= examples:
            break
    x = jnp.asarray(time_major(np.concatenate(images)[:examples]))
    y = jnp.asarray(np.concatenate(labels)[:examples])
    loss_fn_per_example = losses.get_loss(config.loss.name)

    def loss_fn(params):
        model = restored.defs.model(params, model_state)
        return jnp.mean(loss_fn_per_example(model(x), y))

    k1, k2 = jax.random.split(jax.random.key(seed))
    directions = (filter_normalized_direction(restored.params, k1), filter_normalized_direction(restored.params, k2))
    coords = np.linspace(-span, span, resolution)
    surface = loss_surface(loss_fn, restored.params, directions, coords, chunk=4, progress=progress)
    out = Path(out_dir or workdir)
    out.mkdir(parents=True, exist_ok=True)
    npz = unused_path(out / f"landscape-step{step}.npz")
    np.savez(npz, loss=surface, coords=coords, step=step, examples=len(y), seed=seed)
    png = plot_landscape(surface, coords, npz.with_suffix(".png"), title=f"{config.model.name} ({config.model.variant}) step {step}")
    if config.logging.tensorboard:
        board = TensorBoard(Path(workdir) / TENSORBOARD_DIR)
        board.image("landscape", png, step)
        board.close()
    return {
        "step": step,
        "png": str(png),
        "npz": str(npz),
        "min_loss": float(surface.min()),
        "center_loss": float(surface[resolution // 2, resolution // 2]),
    }
