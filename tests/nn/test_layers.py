import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import nn, ops


def numpy_conv(x, w, stride, pad):
    """Direct-loop NHWC/HWIO cross-correlation, independent of XLA."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, _, co = w.shape
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, co))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j, :] = np.einsum("bhwc,hwco->bo", patch, w)
    return out


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
def test_binary_conv_against_numpy(binary, stride):
    conv = nn.BinaryConv(3, 4, 3, stride, binary=binary, time_fold=False, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6, 3)).astype(np.float32)  # [T, B, H, W, C]
    k = np.asarray(conv.kernel[...])
    w = np.abs(k).reshape(-1, 4).mean(0) * np.where(k >= 0, 1, -1) if binary else k
    expected = np.stack([numpy_conv(x[t], w, stride, 1) for t in range(2)])
    np.testing.assert_allclose(np.asarray(conv(jnp.asarray(x))), expected, rtol=1e-4, atol=1e-4)
    assert isinstance(conv.kernel, nn.BinaryParam) == binary


def test_time_fold_and_per_step_agree_in_value_and_gradient():
    x = random_inputs.normal(1, (3, 2, 8, 8, 4))
    convs = [nn.BinaryConv(4, 5, time_fold=f, rngs=nnx.Rngs(3)) for f in (True, False)]
    outs = [c(x) for c in convs]
    np.testing.assert_allclose(np.asarray(outs[0]), np.asarray(outs[1]), rtol=1e-5, atol=1e-5)
    grads = [nnx.grad(lambda m: jnp.sum(m(x) ** 2))(c) for c in convs]
    np.testing.assert_allclose(np.asarray(grads[0].kernel[...]), np.asarray(grads[1].kernel[...]), rtol=1e-4, atol=1e-4)


def test_bfloat16_compute_on_spikes_is_exact_up_to_rounding():
    """Spikes and signs are exact in bfloat16, so a binary conv's only errors are the roundings of
    its per-channel scale and of its output (unit roundoff 2^-8 each), and its parameters and
    gradients stay float32."""
    x = (random_inputs.uniform(4, (2, 3, 8, 8, 16)) < 0.3).astype(jnp.float32)
    convs = [nn.BinaryConv(16, 8, compute_dtype=d, rngs=nnx.Rngs(5)) for d in (None, "bfloat16")]
    exact, mixed = (c(x) for c in convs)
    assert mixed.dtype == jnp.float32 and convs[1].kernel[...].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(mixed), np.asarray(exact), rtol=2 * 2**-8, atol=1e-6)
    grads = [nnx.grad(lambda m: jnp.sum(m(x) * x[..., :8]))(c).kernel[...] for c in convs]
    assert grads[1].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(grads[1]), np.asarray(grads[0]), rtol=2**-7, atol=1e-3 * float(jnp.max(jnp.abs(grads[0]))))


def test_binary_linear_and_bias():
    lin = nn.BinaryLinear(6, 3, binary=True, rngs=nnx.Rngs(0))
    x = random_inputs.normal(0, (2, 4, 6))
    k = np.asarray(lin.kernel[...])
    w = np.abs(k).mean(0) * np.where(k >= 0, 1, -1)
    np.testing.assert_allclose(np.asarray(lin(x)), np.asarray(x) @ w, rtol=1e-5, atol=1e-5)
    assert isinstance(lin.kernel, nn.BinaryParam) and not isinstance(lin.bias, nn.BinaryParam)


def test_batchnorm_statistics_pool_time_and_batch():
    bn = nn.BatchNorm(3, rngs=nnx.Rngs(0))
    x = random_inputs.normal(2, (4, 5, 2, 2, 3)) * jnp.array([1.0, 2.0, 3.0]) + 1.0
    xn = np.asarray(x)
    mean, var = xn.mean((0, 1, 2, 3)), xn.var((0, 1, 2, 3))
    np.testing.assert_allclose(np.asarray(bn(x)), (xn - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)
    # PyTorch's momentum 0.1: running = 0.9 * running + 0.1 * batch
    np.testing.assert_allclose(np.asarray(bn.mean[...]), 0.1 * mean, rtol=1e-5)


def test_lif_module_is_lif_scan_and_rejects_bad_options():
    x = random_inputs.normal(3, (4, 2, 5)) + 0.7
    lif = nn.LIF(tau=0.25, reset="soft", surrogate="arctan", beta=2.0)
    np.testing.assert_array_equal(np.asarray(lif(x)), np.asarray(ops.lif_scan(x, 0.25, reset="soft", surrogate="arctan", beta=2.0)))
    with pytest.raises(ValueError, match="unknown surrogate"):
        nn.LIF(surrogate="gauss")
    with pytest.raises(ValueError, match="unknown reset"):
        nn.LIF(reset="none")


def test_agmm_module_alpha_and_time_check():
    m = nn.AGMM(3)
    np.testing.assert_array_equal(np.asarray(m.alpha[...]), np.ones(3))
    x = random_inputs.normal(4, (3, 2, 4, 4, 2))
    np.testing.assert_allclose(np.asarray(m(x)), np.asarray(ops.agmm(x, jnp.ones(3))))
    with pytest.raises(ValueError, match="built for T=3"):
        m(x[:2])


def test_pooling_and_unknown_kind():
    x = jnp.arange(16.0).reshape(1, 1, 4, 4, 1)
    np.testing.assert_array_equal(np.asarray(nn.pool(x, 2, fold=False))[0, 0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    assert nn.pool(x, 3, stride=2, padding=1, kind="max", fold=True).shape == (1, 1, 2, 2, 1)
    with pytest.raises(ValueError, match="unknown pooling"):
        nn.pool(x, 2, kind="median", fold=True)
