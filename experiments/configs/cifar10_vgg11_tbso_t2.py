"""BSO paper Table 2, cifar10_vgg11_tbso_t2: VGG-11 trained online by T-BSO. Recipe and row in common.py."""

from experiments.configs.common import bso_row


def get_config():
    return bso_row("cifar10_vgg11_tbso_t2")
