"""Flax NNX modules wrapping ``bsnn_jax.ops``."""

from bsnn_jax.nn.layers import AGMM, LIF, BatchNorm, BinaryConv, BinaryLinear, BinaryParam, SynapticLayer, pool
from bsnn_jax.nn.time import default_time_fold, time_map

__all__ = ["AGMM", "LIF", "BatchNorm", "BinaryConv", "BinaryLinear", "BinaryParam", "SynapticLayer", "default_time_fold", "pool", "time_map"]
