"""AGMM Table 1, dvs_gesture_vggsnn_t16: AGMM-BSNN. Recipe and row in common.py."""

from experiments.configs.common import table1


def get_config():
    return table1("dvs_gesture_vggsnn_t16", variant="agmm")
