"""AGMM Table 1, dvs_cifar10_vggsnn_t10: full-precision SNN. Recipe and row in common.py."""

from experiments.configs.common import table1


def get_config():
    return table1("dvs_cifar10_vggsnn_t10", variant="fp")
