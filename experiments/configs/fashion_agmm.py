"""AGMM-BSNN (small_cnn) on Fashion-MNIST trained to convergence with the paper's recipe (SGD,
momentum 0.9, cosine to 0, weight decay 1e-4 on kernels, TET loss), T=2.

    bsnn train --config experiments/configs/fashion_agmm.py --workdir runs/fashion_agmm

Target: >= 92%, above the 91.6% of the 2-conv full-precision CNN in the Fashion-MNIST paper.
Batch 32 and lr 0.05 as the demo.
"""

from experiments.configs.common import on_builtin_data, paper_recipe


def get_config():
    c = on_builtin_data(paper_recipe())
    c.name = "fashion_agmm"
    c.model.variant = "agmm"
    c.optimizer.learning_rate = 0.05
    c.num_epochs = 20
    return c
