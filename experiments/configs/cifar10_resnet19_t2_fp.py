"""AGMM Table 1, cifar10_resnet19_t2: full-precision SNN. Recipe and row in common.py."""

from experiments.configs.common import table1


def get_config():
    return table1("cifar10_resnet19_t2", variant="fp")
