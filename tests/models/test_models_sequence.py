"""The spiking MLP and the 1-D convnet against a numpy reading of the methods-spec.

The reference recomputes the logits from the model's parameters with numpy alone: per-channel
``gamma * sign(w)`` (AGMM Eq. 5), BatchNorm over T*B (train mode), AGMM Eq. 11, the LIF of
methods-spec 1.1 written as a loop (tau = 0.5, V_th = 1, hard reset), a direct 1-D correlation
and 2-wide average pooling. The architecture (which layers are binary, where AGMM sits, a
static input repeated over T) is written out here again.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bsnn_jax import metrics, models, nn

T, B, K = 3, 4, 5
TAU, V_TH, EPS = 0.5, 1.0, 1e-5


def lif(x):
    u, out = np.zeros(x.shape[1:]), []
    for t in range(len(x)):
        h = TAU * u + x[t]
        s = (h >= V_TH).astype(np.float64)
        out.append(s)
        u = h * (1 - s)
    return np.stack(out)


def bn(x, p):
    axes = tuple(range(x.ndim - 1))
    return (x - x.mean(axes)) / np.sqrt(x.var(axes) + EPS) * p["scale"] + p["bias"]


def agmm(x, alpha):
    e = alpha.reshape((-1,) + (1,) * (x.ndim - 1)) * x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)
    return x / (1 + np.exp(-e))


def weight(kernel, binary):
    if not binary:
        return kernel
    return np.sign(kernel) * np.abs(kernel).mean(axis=tuple(range(kernel.ndim - 1)))


def conv1d(x, w):
    """[T, B, L, C] x [k, C, O], stride 1, zero padding k // 2, as a loop over kernel taps."""
    k = w.shape[0]
    pad = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (0, 0)))
    return sum(pad[:, :, p : p + x.shape[2]] @ w[p] for p in range(k))


def unit(x, p, layer, variant, first, op):
    binary = variant != "fp" and not first
    y = bn(op(x, weight(p[layer]["kernel"], binary)), p["bn"])
    return agmm(y, p["agmm"]["alpha"]) if binary and variant == "agmm" else y


def mlp_reference(p, x, variant):
    x = x.reshape(x.shape[:2] + (-1,))
    for i in range(3):
        x = lif(unit(x, p["units"][i], "dense", variant, i == 0, np.matmul))
    return x @ p["fc"]["kernel"] + p["fc"]["bias"]


def conv1d_reference(p, x, variant):
    x = x.reshape(x.shape[:3] + (-1,))  # [T, B, L, 1, C] -> [T, B, L, C]
    for i in range(3):
        x = lif(unit(x, p["units"][i], "conv", variant, i == 0, conv1d))
        if i < 2:
            t, b, length, c = x.shape
            x = x[:, :, : length // 2 * 2].reshape(t, b, length // 2, 2, c).mean(3)
    return x.mean(2) @ p["fc"]["kernel"] + p["fc"]["bias"]


def build(name, variant, shape, seed):
    """The model with every parameter moved off its init (BN affine, AGMM alpha per step)."""
    model = models.create(name, variant=variant, num_classes=K, timesteps=T, input_shape=shape, rngs=seed)
    rng = np.random.default_rng(seed)
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if path[-1] in ("scale", "bias"):
            var[...] = jnp.asarray(rng.uniform(0.5, 1.5, var.shape), jnp.float32)
        if path[-1] == "alpha":
            var[...] = jnp.asarray(rng.uniform(-2.0, 4.0, var.shape), jnp.float32)
    return model


def params_of(model):
    return jax.tree.map(lambda v: np.asarray(v, np.float64), nnx.to_pure_dict(nnx.state(model, nnx.Param)))


CASES = [
    ("mlp", (12,), "sequence"),
    ("mlp", (2, 3, 2), "static"),
    ("conv1d", (10, 1, 2), "sequence"),
    ("conv1d", (10, 1, 2), "static"),
]


@pytest.mark.parametrize("variant", ["fp", "bsnn", "agmm"])
@pytest.mark.parametrize("name, shape, kind", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_logits_match_a_numpy_composition(name, shape, kind, variant):
    model = build(name, variant, shape, seed=3)
    x = 2.0 * np.random.default_rng(4).normal(size=(B,) + shape if kind == "static" else (T, B) + shape)
    logits = np.asarray(model(jnp.asarray(x, jnp.float32)))
    x_seq = np.broadcast_to(x, (T,) + x.shape) if kind == "static" else x
    reference = (mlp_reference if name == "mlp" else conv1d_reference)(params_of(model), x_seq, variant)
    np.testing.assert_allclose(logits, reference, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("name, binary_layers", [("mlp", 2), ("conv1d", 2)])
def test_binary_layout_size_report_and_flip_kernels(name, binary_layers):
    shapes = {"mlp": (8,), "conv1d": (16, 2)}
    for variant in ("fp", "bsnn", "agmm"):
        model = models.create(name, variant=variant, timesteps=2, input_shape=shapes[name])
        binary = nnx.to_flat_state(nnx.state(model, nn.BinaryParam))
        alphas = [p for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param)) if p[-1] == "alpha"]
        assert len(binary) == (0 if variant == "fp" else binary_layers)
        assert len(alphas) == (binary_layers if variant == "agmm" else 0)
        # the flip ratio looks at the same layers in every variant (AGMM Eq. 8)
        assert len(metrics.flip_kernels(model)) == binary_layers
        report = metrics.model_size(model)
        one_bit = sum(r.params for r in report.rows if r.bits == 1)
        assert one_bit == sum(v.size for _, v in binary)


def test_mlp_size_by_hand():
    """mlp agmm on F=28: FP 28x256, binary 256x256 twice (1 bit), BN affine 3x2x256, 2x3 alphas, FC 256x10+10."""
    model = nnx.eval_shape(lambda: models.create("mlp", variant="agmm", timesteps=3, input_shape=(28,)))
    report = metrics.model_size(model)
    fp_params = 28 * 256 + 3 * 2 * 256 + 2 * 3 + 256 * 10 + 10
    assert report.total_bytes == pytest.approx(fp_params * 4 + 2 * 256 * 256 / 8)


def test_wrong_inputs_name_the_fix():
    model = nnx.eval_shape(lambda: models.create("mlp", variant="agmm", timesteps=3, input_shape=(1, 1, 28)))
    with pytest.raises(models.ModelInputError, match=r"T=3 .*got input with T=28.*--config.model.timesteps=28"):
        nnx.eval_shape(lambda m, v: m(v), model, jax.ShapeDtypeStruct((28, 2, 1, 1, 28), jnp.float32))
    with pytest.raises(models.ModelInputError, match="conv1d is a 1-D convnet"):
        models.create("conv1d", input_shape=(8, 8, 3))
    with pytest.raises(models.ModelInputError, match="at least 4 samples"):
        models.create("conv1d", input_shape=(3, 1))
