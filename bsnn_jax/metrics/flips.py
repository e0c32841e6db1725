"""Weight sign flips: AGMM Eq. 8 (net flips between epochs) and Larq's per-step FlipRatio."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax.nn import SynapticLayer

Kernels = dict[str, jax.Array]


def flip_kernels(model: nnx.Module) -> Kernels:
    """The kernels whose signs the flip ratio follows: every layer the binary variants binarize.

    In a full-precision model these are the same layers' real weights (AGMM Fig. 1 compares
    FP-SNN and BSNN on them). Keys are module paths such as ``"blocks.3.unit.conv"``.
    """
    return {
        ".".join(map(str, path)): module.kernel[...]
        for path, module in nnx.iter_graph(model)
        if isinstance(module, SynapticLayer) and module.binarizable
    }


def signs(kernels: Kernels) -> Kernels:
    """sign(W) with sign(0) = +1 as int8: one byte per weight to keep between epochs."""
    return {k: jnp.where(w >= 0, 1, -1).astype(jnp.int8) for k, w in kernels.items()}


def count_flips(before: Kernels, after: Kernels) -> tuple[jax.Array, int]:
    """Number of weights whose sign differs between two snapshots, pooled over layers, and the
    number of weights. Jittable; the per-step metric calls it on the kernels around one update."""
    if before.keys() != after.keys():
        raise ValueError(f"snapshots cover different layers: {sorted(before.keys() ^ after.keys())}")
    sb, sa = signs(before), signs(after)
    flipped = sum(jnp.sum(sb[k] != sa[k], dtype=jnp.int32) for k in sb)
    return flipped, sum(w.size for w in sb.values())


def flip_ratio(before: Kernels, after: Kernels) -> jax.Array:
    """AGMM Eq. 8: pi_e = sum_n #[sign(W_e^n) != sign(W_{e+1}^n)] / sum_n |W_e^n|.

    ``before`` and ``after`` are the flip kernels (or their ``signs``) at two consecutive epoch
    ends; this counts net flips between the snapshots, not every step.
    """
    flipped, total = count_flips(before, after)
    return flipped / total if total else float("nan")  # nan: a model without binarizable kernels


@dataclasses.dataclass
class StepFlipRatio:
    """Larq's ``FlipRatio``: the mean over the steps of an epoch of the fraction of weights
    whose sign changed in that step, ``sum_k ratio_k / K`` (Helwegen et al. 2019).

    Larq keeps one per layer; this pools the layers, weighting each by its size, to sit beside
    Eq. 8's pooled ratio. Feed it the jitted step's ``count_flips`` results. Its two fields are
    its whole state (a checkpoint keeps them with ``dataclasses.asdict``).
    """

    ratio_sum: float = 0.0
    steps: int = 0

    def reset(self) -> None:
        self.ratio_sum, self.steps = 0.0, 0

    def update(self, flipped, total: int) -> None:
        if total:  # a model without binarizable kernels has no ratio (result() is nan)
            self.ratio_sum += float(flipped) / total
            self.steps += 1

    def result(self) -> float:
        return self.ratio_sum / self.steps if self.steps else float("nan")


def gradient_stats(grads: Kernels) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Mean and variance of each layer's weight gradient: the mu and sigma^2 of AGMM Prop. 1
    and Eq. 16, which AGMM claims to shrink. Jittable."""
    return {k: (jnp.mean(g), jnp.var(g)) for k, g in grads.items()}
