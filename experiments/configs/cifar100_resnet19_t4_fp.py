"""AGMM Table 1, cifar100_resnet19_t4: full-precision SNN. Recipe and row in common.py."""

from experiments.configs.common import table1


def get_config():
    return table1("cifar100_resnet19_t4", variant="fp")
