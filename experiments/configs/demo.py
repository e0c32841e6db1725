"""The built-in demo: AGMM-BSNN (small_cnn, binary 3x3 convs + AGMM, FP first conv and classifier)
on Fashion-MNIST, about 3 minutes on a 2-core CPU.

    bsnn train --config experiments/configs/demo.py --workdir runs/demo

Target: >= 87.3% test accuracy, the published binary-weight SNN BS4NN on Fashion-MNIST.
"""

from bsnn_jax.train.config import default_config


def get_config():
    c = default_config()
    c.name = "demo"
    c.seed = 0
    c.dataset.name = "fashion_mnist"
    c.model.name = "small_cnn"
    c.model.variant = "agmm"
    c.model.timesteps = 2
    c.loss.name = "tet"
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.weight_decay = 1e-4
    c.schedule.name = "cosine"
    c.schedule.warmup_epochs = 0.0
    c.batch_size = 32  # on XLA CPU small batches run faster per example (29 ms/step here)
    c.eval_batch_size = 500
    c.num_epochs = 2
    c.log_every_steps = 50
    return c
