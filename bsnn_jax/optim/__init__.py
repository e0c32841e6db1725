"""Optax transformations: latent-weight-free binary training (Bop, BSO, T-BSO and the routing of
binary kernels vs the rest) and the named optimizers and schedules a run config chooses from.

A BSO training setup with an NNX model::

    from flax import nnx
    from bsnn_jax import nn, optim

    model = nn.latent_free(model)                     # +-1 kernels used as stored, no latent weights
    tx = optim.binary_partition(model, binary=optim.t_bso(timesteps=T),
                                fp=optim.fp_sgd(0.1, total_steps=epochs * steps * T))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    ...
    optimizer.update(model, grads, t=t)               # once per time step t
"""

from bsnn_jax.optim.binary import binary_labels, binary_partition, sign_binary_kernels, sign_kernels
from bsnn_jax.optim.flip import FlipState, OneMinus, bop, bso, t_bso
from bsnn_jax.optim.recipe import (
    BINARY_TRAINING,
    FLIP_OPTIMIZERS,
    OPTIMIZERS,
    SCHEDULES,
    decays,
    fp_sgd,
    make_flip_optimizer,
    make_optimizer,
    make_schedule,
    weight_decay_mask,
)

__all__ = [
    "BINARY_TRAINING",
    "FLIP_OPTIMIZERS",
    "FlipState",
    "OPTIMIZERS",
    "OneMinus",
    "SCHEDULES",
    "binary_labels",
    "binary_partition",
    "bop",
    "bso",
    "decays",
    "fp_sgd",
    "make_flip_optimizer",
    "make_optimizer",
    "make_schedule",
    "sign_binary_kernels",
    "sign_kernels",
    "t_bso",
    "weight_decay_mask",
]
