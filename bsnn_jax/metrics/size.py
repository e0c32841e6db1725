"""Model size counted as the papers count it (methods-spec 1.6).

One bit per binary weight, 32 bits per full-precision weight and per BatchNorm affine
parameter (AGMM's alpha included), BN running statistics excluded, 1 MB = 10^6 bytes.
The per-channel scale gamma of Eq. 5 is not stored: at inference it folds into the BN that
follows every binary conv. This reproduces AGMM's 50.46 MB (ResNet-19 FP-SNN) and 2.46 MB
(AGMM-BSNN), and BSO's VGG-11 1.20/1.39 MB (binary) and 36.91/37.10 MB (full precision).
"""

from __future__ import annotations

import dataclasses

from flax import nnx

from bsnn_jax.nn import BinaryParam

FP_BITS = 32


@dataclasses.dataclass(frozen=True)
class ParamSize:
    """One parameter tensor of the report."""

    path: str
    shape: tuple[int, ...]
    bits: int

    @property
    def params(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def bytes(self) -> float:
        return self.params * self.bits / 8


@dataclasses.dataclass(frozen=True)
class SizeReport:
    """Every parameter tensor of a model and the totals the papers quote."""

    rows: tuple[ParamSize, ...]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def binary_params(self) -> int:
        return sum(r.params for r in self.rows if r.bits == 1)

    @property
    def total_bytes(self) -> float:
        return sum(r.bytes for r in self.rows)

    @property
    def size_mb(self) -> float:
        return self.total_bytes / 1e6

    def to_dict(self) -> dict:
        return {
            "total_params": self.total_params,
            "binary_params": self.binary_params,
            "full_precision_params": self.total_params - self.binary_params,
            "total_bytes": self.total_bytes,
            "size_mb": self.size_mb,
            "layers": [{"path": r.path, "shape": list(r.shape), "bits": r.bits, "params": r.params, "bytes": r.bytes} for r in self.rows],
        }


def model_size(model: nnx.Module) -> SizeReport:
    """Counts every trainable parameter of ``model`` (works on ``nnx.eval_shape`` abstract models)."""
    rows = tuple(
        ParamSize(".".join(str(k) for k in path), tuple(var.shape), 1 if isinstance(var, BinaryParam) else FP_BITS)
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))
    )
    return SizeReport(rows)
