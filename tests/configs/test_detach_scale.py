"""``model.detach_scale``: from the config to every binary layer, and the gradient it gives.

AGMM Eq. 5: ``W_b = gamma * sign(W)`` with ``gamma_o = mean_i |W_io|``. Through the STE,
``dL/dW = gamma 1_{|W|<=1} dL/dW_b`` (the STE term) ``+ sign(W)/n sum_i sign(W_io) dL/dW_b,io``
(the term through gamma). The term through gamma is the true derivative of the loss (sign is
locally constant), so central finite differences of the loss, in float64 numpy, give it alone.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bsnn_jax import configs, data, nn
from bsnn_jax.train import config as C
from bsnn_jax.train.setup import create_model

W = np.array([[0.5, -0.2], [-0.3, 1.5], [0.1, -0.7]])  # [in=3, out=2]; 1.5 lies outside the STE's window
X = np.array([[[1.0, 2.0, -1.0], [0.5, -1.0, 3.0]]])  # [T=1, B=2, F=3]
UP = np.array([[[1.0, -2.0], [0.5, 1.0]]])  # dL/dy: L = sum(y * UP)


def layer_gradient(detach: bool) -> np.ndarray:
    layer = nn.BinaryLinear(3, 2, binary=True, use_bias=False, spike_input=False, detach_scale=detach, rngs=nnx.Rngs(0))
    layer.kernel[...] = jnp.asarray(W, jnp.float32)

    def loss(layer):
        return jnp.sum(layer(jnp.asarray(X, jnp.float32)) * UP)

    return np.asarray(nnx.grad(loss)(layer).kernel[...])


def loss_of(w: np.ndarray) -> float:
    w_b = np.mean(np.abs(w), axis=0) * np.where(w >= 0, 1.0, -1.0)
    return float(np.sum((X @ w_b) * UP))


def finite_differences(w: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(w)
    for index in np.ndindex(*w.shape):
        step = np.zeros_like(w)
        step[index] = h
        grad[index] = (loss_of(w + step) - loss_of(w - step)) / (2 * h)
    return grad


def test_detached_scale_leaves_only_the_ste_term_and_the_rest_is_the_scales_finite_difference():
    g_wb = np.einsum("tbi,tbo->io", X, UP)  # dL/dW_b
    ste = np.mean(np.abs(W), axis=0) * (np.abs(W) <= 1) * g_wb  # hand-worked: gamma 1_{|W|<=1} dL/dW_b
    detached, full = layer_gradient(True), layer_gradient(False)
    np.testing.assert_allclose(detached, ste, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(full - detached, finite_differences(W), rtol=1e-5, atol=1e-5)
    assert np.abs(full - detached).max() > 0.1  # the two settings differ on this layer


FASHION = data.DatasetInfo("fashion_mnist", 10, (28, 28, 1), None, 1, 1)


@pytest.mark.parametrize("detach", [True, False])
def test_config_field_reaches_every_binary_layer(detach):
    config = configs.load("demo", [("model.detach_scale", str(detach).lower())])
    C.validate(config)
    model = nnx.eval_shape(lambda: create_model(config, FASHION))
    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, nn.SynapticLayer)]
    binary = [m for m in layers if m.binary]
    assert binary and all(m.detach_scale == detach for m in binary)


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ([("model.variant", "fp")], "model.variant='fp'"),
        ([("model.variant", "bsnn"), ("optimizer.binary", "bop")], "optimizer.binary='bop'"),
    ],
)
def test_detach_scale_without_latent_binary_kernels_is_a_config_error(overrides, problem):
    config = configs.load("demo", [("model.detach_scale", "true"), *overrides])
    with pytest.raises(C.ConfigError, match=f"model.detach_scale=true .*{problem}.*use variant bsnn or agmm"):
        C.validate(config)
