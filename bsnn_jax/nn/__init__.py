"""Flax NNX modules wrapping ``bsnn_jax.ops``."""

from bsnn_jax.nn.layers import (
    AGMM,
    LIF,
    BatchNorm,
    BinaryConv,
    BinaryConv1d,
    BinaryLinear,
    BinaryParam,
    Membrane,
    SynapticLayer,
    Trace,
    pool,
)
from bsnn_jax.nn.modes import latent_free, online, recording
from bsnn_jax.nn.online_state import OnlineState, load_online_state, reset_online_state
from bsnn_jax.nn.recurrent import RecurrentLIF, RecurrentSpikes
from bsnn_jax.nn.time import default_time_fold, time_map
from bsnn_jax.nn.trace import TraceDrive, TracingLIF

__all__ = [
    "AGMM",
    "LIF",
    "BatchNorm",
    "BinaryConv",
    "BinaryConv1d",
    "BinaryLinear",
    "BinaryParam",
    "Membrane",
    "OnlineState",
    "RecurrentLIF",
    "RecurrentSpikes",
    "SynapticLayer",
    "Trace",
    "TraceDrive",
    "TracingLIF",
    "default_time_fold",
    "latent_free",
    "load_online_state",
    "online",
    "pool",
    "recording",
    "reset_online_state",
    "time_map",
]
