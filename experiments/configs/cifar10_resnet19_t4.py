"""AGMM Table 1, cifar10_resnet19_t4: AGMM-BSNN. Recipe and row in common.py."""

from experiments.configs.common import table1


def get_config():
    return table1("cifar10_resnet19_t4", variant="agmm")
