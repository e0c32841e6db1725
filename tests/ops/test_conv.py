"""ops.conv2d: the forward pass and both gradients equal JAX's own convolution and its autodiff,
and every convolution it compiles inside a scan body is in the canonical NHWC x HWIO layout."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from jax import lax

from bsnn_jax.ops import conv2d


def reference(x, w, strides, padding):
    return lax.conv_general_dilated(
        x, w, (strides, strides), ((padding, padding), (padding, padding)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize(
    "size, kernel, strides, padding",
    [
        ((8, 8), 3, 1, 1),
        ((8, 8), 3, 2, 1),  # ResNet downsampling conv
        ((7, 9), 3, 2, 1),  # odd sizes: the stride drops the last row / column
        ((9, 9), 1, 2, 0),  # 1x1 shortcut
        ((6, 6), 3, 1, 0),  # "valid"
        ((7, 7), 3, 3, 1),
        ((10, 10), 5, 2, 2),
        ((5, 5), 3, 1, 2),  # padding larger than the kernel's half
    ],
)
def test_value_and_gradients_equal_autodiff_of_lax_conv(size, kernel, strides, padding):
    seed = 3 * (sum(size) + 10 * kernel + strides)
    x = random_inputs.normal(seed, (2, *size, 3))
    w = random_inputs.normal(seed + 1, (kernel, kernel, 3, 4))
    y, vjp = jax.vjp(lambda a, b: conv2d(a, b, strides, padding), x, w)
    y_ref, vjp_ref = jax.vjp(lambda a, b: reference(a, b, strides, padding), x, w)
    g = random_inputs.normal(seed + 2, y.shape)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(vjp(g), vjp_ref(g), strict=True):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_gradient_matches_finite_differences():
    x = random_inputs.normal(0, (1, 5, 5, 2))
    w = random_inputs.normal(1, (3, 3, 2, 2))
    loss = lambda b: jnp.sum(jnp.sin(conv2d(x, b, 2, 1)))  # noqa: E731
    grad = jax.grad(loss)(w)
    eps = 1e-2
    for index in [(0, 0, 0, 0), (1, 2, 1, 0), (2, 1, 0, 1)]:
        step = jnp.zeros_like(w).at[index].set(eps)
        numeric = (loss(w + step) - loss(w - step)) / (2 * eps)
        np.testing.assert_allclose(grad[index], numeric, rtol=2e-2, atol=2e-3)


def test_scanned_training_step_compiles_only_canonical_convolutions():
    """JAX's own conv transpose gives XLA:CPU ``f01b_i01o->01bf`` convolutions that inside a loop
    body run on a naive path (10-70x slower); every convolution of ours is b01f_01io->b01f."""
    x = jnp.ones((2, 8, 8, 4))

    def step(w, _):
        g = jax.grad(lambda v: jnp.sum(conv2d(jnp.tanh(conv2d(x, v[0], 1, 1)), v[1], 2, 1) ** 2))(w)
        return jax.tree.map(lambda a, b: a - 1e-3 * b, w, g), None

    w = [jnp.ones((3, 3, 4, 4)), jnp.ones((3, 3, 4, 4))]
    text = jax.jit(lambda w: lax.scan(step, w, jnp.arange(2))[0]).lower(w).as_text(dialect="hlo")
    labels = re.findall(r"dim_labels=(\S+?)[,\s]", text)
    assert len(labels) >= 4  # forward, input gradient and weight gradient of both convs (one forward shared)
    assert set(labels) == {"b01f_01io->b01f"}, labels


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="conv2d expects"):
        conv2d(jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 4, 5)), 1, 1)
    with pytest.raises(ValueError, match="conv2d expects"):
        conv2d(jnp.ones((8, 8, 3)), jnp.ones((3, 3, 3, 5)), 1, 1)
