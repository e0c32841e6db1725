"""MACs under each counting convention, against MACs counted by hand on a tiny Bi-Real ResNet,
and the enumeration that shows no convention gives AGMM Table 2's 0.027 G for ResNet-19."""

import jax.numpy as jnp
import pytest
from flax import nnx

from bsnn_jax import metrics
from bsnn_jax.metrics.activity import Activity, Synapse
from bsnn_jax.models.common import VARIANTS, NetOptions
from bsnn_jax.models.resnet import BiRealResNet

T = 2
# Tiny net: 8x8x3 input, 3x3 stem 3->4, stage 4 (stride 1), stage 8 (stride 2, shortcut avgpool +
# 1x1 4->8 at 4x4), FC 8->10.
STEM, SHORTCUT, FC = 3 * 3 * 3 * 4 * 8 * 8, 4 * 8 * 4 * 4, 8 * 10


@pytest.fixture(scope="module")
def conventions():
    opts = NetOptions(variant=VARIANTS["bsnn"], timesteps=T, time_fold=True)
    model = BiRealResNet([(4, 1, 1), (8, 1, 2)], (8, 8, 3), 10, opts, stem="cifar", rngs=nnx.Rngs(0))
    activity = metrics.measure_activity(model, [jnp.ones((2, 8, 8, 3))])
    return metrics.mac_conventions(activity), metrics.operation_counts(activity)


def test_each_convention_counts_the_hand_counted_layers(conventions):
    by_name, counts = conventions
    want = {
        "every real-input layer x T (ours, Yao et al. 2024)": T * (STEM + SHORTCUT + FC),
        "stem encoded once, the rest x T (what this library computes)": STEM + T * (SHORTCUT + FC),
        "one time step (everything once)": STEM + SHORTCUT + FC,
        "stem x T, shortcuts and classifier once": T * STEM + SHORTCUT + FC,
        "without shortcuts (stem and classifier x T)": T * (STEM + FC),
        "stem x T only": T * STEM,
        "stem once only": STEM,
        "shortcuts and classifier x T, no stem": T * (SHORTCUT + FC),
    }
    assert by_name == pytest.approx(want)
    assert counts.macs == pytest.approx(want["every real-input layer x T (ours, Yao et al. 2024)"])


def test_no_convention_gives_agmm_table2_for_resnet19():
    """ResNet-19, CIFAR-100, T=2, by hand: stem 3x3x3x128 at 32x32, shortcuts 128->256 at 16x16
    and 256->512 at 8x8, FC 512->100. Table 2: 0.027 G (0.0265 to 0.0275 after rounding)."""
    layers = {
        "stem.unit.conv": 3 * 3 * 3 * 128 * 32 * 32,
        "blocks.6.shortcut.proj.conv": 128 * 256 * 16 * 16,
        "blocks.12.shortcut.proj.conv": 256 * 512 * 8 * 8,
        "fc": 512 * 100,
    }
    activity = Activity({}, {p: Synapse(1.0, m, False) for p, m in layers.items()}, timesteps=2)
    by_name = metrics.mac_conventions(activity)
    assert by_name["every real-input layer x T (ours, Yao et al. 2024)"] == pytest.approx(0.0407e9, rel=1e-3)
    assert not [name for name, macs in by_name.items() if 0.0265e9 <= macs < 0.0275e9]
    stem, shortcuts, fc = layers["stem.unit.conv"], layers["blocks.6.shortcut.proj.conv"] * 2, layers["fc"]
    assert max(m for m in by_name.values() if m < 0.027e9) == pytest.approx(2 * stem + shortcuts + fc)  # 0.0239 G
    assert min(m for m in by_name.values() if m > 0.027e9) == pytest.approx(2 * (shortcuts + fc))  # 0.0337 G
