"""The built-in demo: AGMM-BSNN (small_cnn, binary 3x3 convs + AGMM, FP first conv and classifier)
on Fashion-MNIST, about 3 minutes on a 2-core CPU.

    bsnn train --config experiments/configs/demo.py --workdir runs/demo

Target: >= 87.3% test accuracy, the published binary-weight SNN BS4NN on Fashion-MNIST.
"""

from bsnn_jax.train.config import default_config


def get_config():
    # default_config() is already the recipe here (Fashion-MNIST, small_cnn AGMM, TET loss, SGD
    # momentum 0.9 with cosine decay, weight decay 1e-4, seed 0); the demo changes only these.
    c = default_config()
    c.name = "demo"
    c.model.timesteps = 2
    c.optimizer.learning_rate = 0.05
    c.batch_size = 32  # on XLA CPU small batches run faster per example (29 ms/step here)
    c.eval_batch_size = 500
    c.num_epochs = 2
    c.log_every_steps = 50
    return c
