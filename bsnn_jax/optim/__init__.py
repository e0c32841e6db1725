"""Optax transformations of latent-weight-free binary training: Bop, BSO, T-BSO, and routing.

A BSO training setup with an NNX model::

    from flax import nnx
    from bsnn_jax import optim

    optim.latent_free(model)                          # +-1 kernels, no latent weights
    tx = optim.binary_partition(model, binary=optim.t_bso(timesteps=T),
                                fp=optim.fp_sgd(0.1, total_steps=epochs * steps * T))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    ...
    optimizer.update(model, grads, t=t)               # once per time step t
"""

from bsnn_jax.optim.binary import binary_labels, binary_partition, latent_free, sign_binary_kernels, sign_kernels
from bsnn_jax.optim.flip import FlipState, OneMinus, bop, bso, t_bso
from bsnn_jax.optim.fp import fp_sgd

__all__ = [
    "FlipState",
    "OneMinus",
    "binary_labels",
    "binary_partition",
    "bop",
    "bso",
    "fp_sgd",
    "latent_free",
    "sign_binary_kernels",
    "sign_kernels",
    "t_bso",
]
