"""bsnn_jax: binary spiking neural networks in JAX/Flax NNX (AGMM-BSNN, BSO/T-BSO)."""

__version__ = "0.1.0"
