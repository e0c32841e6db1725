"""AGMM Table 1, imagenet_resnet18_t4: full-precision SNN. Recipe and row in common.py."""

from experiments.configs.common import table1


def get_config():
    return table1("imagenet_resnet18_t4", variant="fp")
