"""Pure-function primitives of binary spiking networks; usable from any JAX code, no Flax."""

from bsnn_jax.ops import encode
from bsnn_jax.ops.agmm import agmm
from bsnn_jax.ops.batchnorm import batch_norm
from bsnn_jax.ops.binarize import binarize, channel_scale, sign_ste
from bsnn_jax.ops.conv import conv1d, conv2d
from bsnn_jax.ops.lif import lif_scan, lif_step
from bsnn_jax.ops.once import computed_once
from bsnn_jax.ops.remat import remat
from bsnn_jax.ops.spike import SURROGATES, spike
from bsnn_jax.ops.trace import TRACES, adaptive_decay, presynaptic_trace, trace_gradient

__all__ = [
    "SURROGATES",
    "TRACES",
    "adaptive_decay",
    "agmm",
    "batch_norm",
    "binarize",
    "channel_scale",
    "computed_once",
    "conv1d",
    "conv2d",
    "encode",
    "lif_scan",
    "lif_step",
    "presynaptic_trace",
    "remat",
    "sign_ste",
    "spike",
    "trace_gradient",
]
