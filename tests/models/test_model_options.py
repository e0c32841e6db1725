"""ResNet stems and VGG-11's classifier initialisation (the BSO code's choices as options)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bsnn_jax import models
from bsnn_jax.models.common import VARIANTS, NetOptions
from bsnn_jax.models.resnet import BiRealResNet


@pytest.mark.parametrize("name, stem, kernel", [("resnet18", None, 7), ("resnet18", "bireal", 3), ("resnet19", None, 3)])
def test_family_stem_kernels(name, stem, kernel):
    model = nnx.eval_shape(lambda: models.create(name, variant="bsnn", timesteps=1, stem=stem, rngs=0))  # shapes only
    assert model.stem.unit.conv.kernel.shape[:2] == (kernel, kernel)


@pytest.mark.parametrize("stem, kernel, side", [("imagenet", 7, 8), ("bireal", 3, 16), ("cifar", 3, 32)])
def test_stem_stride_and_pool(stem, kernel, side):
    opts = NetOptions(variant=VARIANTS["bsnn"], timesteps=1, time_fold=True)
    model = BiRealResNet([(8, 1, 1)], (32, 32, 3), 10, opts, stem=stem, rngs=nnx.Rngs(0))
    assert model.stem.unit.conv.kernel.shape[:2] == (kernel, kernel)
    assert model.stem(jnp.zeros((1, 2, 32, 32, 3))).shape[2:4] == (side, side)


def test_unknown_stem_and_stemless_family_are_errors():
    with pytest.raises(ValueError, match="bireal"):
        BiRealResNet([(8, 1, 1)], (32, 32, 3), 10, NetOptions(VARIANTS["bsnn"], 1, True), stem="resnet", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="no stem option"):
        models.create("vgg11", stem="bireal")


def test_vgg11_classifier_is_normal_001_and_others_lecun():
    vgg11 = models.create("vgg11", variant="bsnn", num_classes=100, timesteps=1, rngs=1)
    w = np.asarray(vgg11.fc.kernel[...])  # 512 x 100 draws of N(0, 0.01)
    assert abs(w.std() - 0.01) < 0.0005 and abs(w.mean()) < 0.0005
    np.testing.assert_array_equal(vgg11.fc.bias[...], 0.0)
    small = models.create("small_cnn", variant="bsnn", timesteps=1, rngs=1)
    fan_in = small.fc.kernel.shape[0]
    assert abs(np.asarray(small.fc.kernel[...]).std() - 1 / np.sqrt(fan_in)) < 0.1 / np.sqrt(fan_in)
