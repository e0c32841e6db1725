"""``train.init_from``: a new run that starts from the weights of another run.

The BSO paper's ImageNet recipe pre-trains at T=1 and fine-tunes at T=4-6 from those weights
(its Table 6/7); the same field fine-tunes any run under a new optimizer, schedule or T, e.g. an
AGMM-BSNN under T-BSO. Only the model moves (parameters and model state such as BatchNorm's
running statistics); the step, the optimizer state and the data stream start afresh. A run that
already has checkpoints resumes from them and ignores ``init_from``.
"""

from __future__ import annotations

from typing import Any

import jax

from bsnn_jax import optim
from bsnn_jax.train.checkpoint import CheckpointError
from bsnn_jax.train.restore import restore
from bsnn_jax.train.setup import Run
from bsnn_jax.train.state import TrainState


def _same_layout(name: str, target: Any, source: Any, where: str) -> None:
    """A clear error when ``source`` does not fit ``target`` leaf for leaf."""
    target_leaves = dict(jax.tree_util.tree_flatten_with_path(target)[0])
    source_leaves = dict(jax.tree_util.tree_flatten_with_path(source)[0])
    if target_leaves.keys() != source_leaves.keys():
        missing = sorted(jax.tree_util.keystr(k) for k in target_leaves.keys() - source_leaves.keys())
        extra = sorted(jax.tree_util.keystr(k) for k in source_leaves.keys() - target_leaves.keys())
        raise CheckpointError(
            f"train.init_from={where}: its {name} do not match this run's model (missing there: {missing[:3]}, "
            f"only there: {extra[:3]}); use a run of the same model family, variant and widths"
        )
    for key, leaf in target_leaves.items():
        if leaf.shape != source_leaves[key].shape:
            raise CheckpointError(
                f"train.init_from={where}: {name}{jax.tree_util.keystr(key)} has shape {source_leaves[key].shape} there, "
                f"{leaf.shape} here; use a run of the same model (a per-time-step parameter such as AGMM's alpha fixes T)"
            )


def warm_start(run: Run) -> TrainState:
    """``run.state`` with the parameters and model state of the latest checkpoint of the run in
    ``run.config.train.init_from``.

    Binary kernels follow this run's optimizer: a flip rule (Bop, BSO, T-BSO) trains +-1 kernels,
    so latent weights from an AGMM or vanilla-BSNN run enter as ``sign(w)`` (BSO Eq. 11's W in
    {-1, +1}), which is also what they computed as (``sign_ste``, AGMM Eq. 5 up to gamma).
    """
    where = run.config.train.init_from
    source = restore(where, mesh=run.mesh)
    _same_layout("params", run.state.params, source.params, where)
    _same_layout("model state", run.state.model_state, source.model_state, where)
    params = source.params
    if run.optimizer.codec is not None:
        params = optim.sign_kernels(params, run.optimizer.model)
    return run.state.replace(params=params, model_state=source.model_state)
