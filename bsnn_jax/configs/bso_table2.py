"""BSO paper (ICML 2025), Table 2: VGG-11 trained online by T-BSO, one config per row.

    bsnn train --config cifar10_vgg11_tbso_t2 --workdir runs/c10_tbso_t2

The recipe (:func:`bso_recipe`) and the BSO code's neuron (:data:`BSO_NEURON`) are shared with
the built-in T-BSO config (``fashion_tbso``) and the online-memory benchmark.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import ml_collections

from bsnn_jax.train.config import default_config

# methods-spec 2.4-2.5. target: T-BSO top-1 accuracy (%) in the paper. DVS-CIFAR10 uses
# gamma 1e-6 (paper B.1), CIFAR 5e-7.
BSO_ROWS: dict[str, dict] = {
    "cifar10_vgg11_tbso_t2": {"dataset": "cifar10", "timesteps": 2, "threshold": 5e-7, "target": 94.32},
    "cifar10_vgg11_tbso_t4": {"dataset": "cifar10", "timesteps": 4, "threshold": 5e-7, "target": 94.86},
    "cifar10_vgg11_tbso_t6": {"dataset": "cifar10", "timesteps": 6, "threshold": 5e-7, "target": 94.70},
    "cifar100_vgg11_tbso_t2": {"dataset": "cifar100", "timesteps": 2, "threshold": 5e-7, "target": 73.40},
    "cifar100_vgg11_tbso_t4": {"dataset": "cifar100", "timesteps": 4, "threshold": 5e-7, "target": 73.82},
    "cifar100_vgg11_tbso_t6": {"dataset": "cifar100", "timesteps": 6, "threshold": 5e-7, "target": 74.27},
    "dvs_cifar10_vgg11_tbso_t10": {"dataset": "dvs_cifar10", "timesteps": 10, "threshold": 1e-6, "target": 81.00},
}

# The BSO code's OnlineLIFNode: v = 0.5 v + x (tau = 2), soft reset with the reset detached,
# spikingjelly's Sigmoid surrogate with alpha = 4 (AGMM's neuron differs: hard reset, triangle).
BSO_NEURON = {"tau": 0.5, "v_th": 1.0, "reset": "soft", "detach_reset": True, "surrogate": "sigmoid", "beta": 4.0}


def bso_recipe() -> ml_collections.ConfigDict:
    """The training recipe of T-BSO as the released code runs it (hamingsi/BSO @cb01fd4,
    ``train_cifar.sh``; methods-spec 2.1-2.4).

    Online training (one time step at a time, an update after every step) of a vanilla BSNN
    whose binary kernels are +-1 and flipped by T-BSO (threshold 5e-7, beta1 = 1 - 1e-3,
    beta2 = 1 - 1e-5), the rest by SGD without momentum or weight decay at lr 0.1, batch 128,
    400 epochs, seed 2025, the code's CE + 0.05 MSE loss, the BSO neuron. Where the code and the
    paper text differ, the code's effective setting, with the paper's one override away:

    - threshold and momentum rate x0.1 every 50 epochs (``CustomScheduler``); the paper lists no
      schedule: ``--config.optimizer.flip.decay_every_epochs=0``.
    - the full-precision lr stays 0.1 (the code's ``CosineAnnealingLR`` is attached to the Bop
      wrapper, whose ``param_groups`` the inner SGD does not read); the paper says cosine to 0:
      ``--config.schedule.name=cosine``.
    - CIFAR: AutoAugment (``--autoaug``) on top of crop, flip and Cutout; the paper lists crop,
      flip and Cutout: ``--config.dataset.autoaugment=false``.
    - ``sqrt(v[t]) + 1e-10`` (``Bop.step``) for the paper's ``sqrt(v[t] + eps)``:
      ``--config.optimizer.flip.eps_outside_sqrt=false --config.optimizer.flip.eps=1e-20``.
    - the presynaptic trace decays per neuron (``OnlineLIFNode``'s ratio, ``ops.adaptive_decay``);
      the paper's Alg. 1 uses OTTT's constant lambda: ``--config.train.trace=constant``.
    """
    c = default_config()
    c.seed = 2025
    c.batch_size = 128
    c.eval_batch_size = 256
    c.num_epochs = 400
    c.loss.name = "tet_mse"
    c.model.variant = "bsnn"
    c.model.neuron.update(BSO_NEURON)
    c.train.mode = "online"
    c.train.online_update = "per_step"
    c.train.trace = "adaptive"
    c.optimizer.binary = "t_bso"
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.1
    c.optimizer.momentum = 0.0
    c.optimizer.weight_decay = 0.0
    c.optimizer.flip.decay_every_epochs = 50
    c.optimizer.flip.eps_outside_sqrt = True  # Bop.step: m / (sqrt(v[t]) + 1e-10); the paper: sqrt(v[t] + eps)
    c.optimizer.flip.eps = 1e-10
    c.optimizer.flip.decay_factor = 0.1
    c.schedule.name = "constant"
    c.dataset.autoaugment = True
    c.dataset.cutout = True
    c.log_every_steps = 50
    return c


def bso_row(row: str) -> ml_collections.ConfigDict:
    """The config of one Table 2 row (a key of :data:`BSO_ROWS`)."""
    if row not in BSO_ROWS:
        raise ValueError(f"unknown BSO row {row!r}; known: {sorted(BSO_ROWS)}")
    spec = BSO_ROWS[row]
    c = bso_recipe()
    c.name = row
    c.dataset.name = spec["dataset"]
    c.model.name = "vgg11"
    c.model.timesteps = spec["timesteps"]
    c.optimizer.flip.threshold = spec["threshold"]
    cifar = spec["dataset"].startswith("cifar")
    c.dataset.autoaugment = c.dataset.cutout = cifar
    # The BSO code's DVS-CIFAR10 loader: pad 4, random crop 48, flip (TET's flip + roll is the default).
    c.dataset.dvs_augmentation = "flip_roll" if cifar else "crop_flip"
    return c


CONFIGS: dict[str, Callable[[], ml_collections.ConfigDict]] = {row: functools.partial(bso_row, row) for row in BSO_ROWS}
