import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from export.test_export_fold import TINY_RESNET  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import models, nn, ops
from bsnn_jax.models.common import REMAT_POLICIES
from bsnn_jax.train.state import create_train_state
from bsnn_jax.train.step import make_train_step

SMALL_INPUTS = {
    "resnet19": (16, 16, 3),
    "resnet18": (32, 32, 3),
    "vggsnn": (32, 32, 2),
    "vgg11": (16, 16, 3),
    "small_cnn": (28, 28, 1),
    "reference": (8, 8, 3),
    "mlp": (1, 1, 6),
    "conv1d": (8, 1, 2),
}
# binary convs per family: the convs between the full-precision first conv and classifier
BINARY_CONVS = {"resnet19": 16, "resnet18": 16, "vggsnn": 7, "vgg11": 7, "small_cnn": 2, "reference": 3, "mlp": 2, "conv1d": 2}


def abstract(name, variant, **kw):
    return nnx.eval_shape(lambda: models.create(name, variant=variant, **kw))


@pytest.mark.parametrize("name", sorted(models.FAMILIES))
@pytest.mark.parametrize("variant", sorted(models.VARIANTS))
def test_output_shape_and_binary_layout(name, variant):
    shape = SMALL_INPUTS[name]
    model = abstract(name, variant, num_classes=7, timesteps=3, input_shape=shape)
    for x in (jax.ShapeDtypeStruct((3, 2) + shape, jnp.float32), jax.ShapeDtypeStruct((2,) + shape, jnp.float32)):
        out = nnx.eval_shape(lambda m, v: m(v), model, x)
        assert out.shape == (3, 2, 7)
    binary = [p for p, _ in nnx.to_flat_state(nnx.state(model, nn.BinaryParam))]
    alphas = [p for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param)) if p[-1] == "alpha"]
    assert len(binary) == (BINARY_CONVS[name] if variant != "fp" else 0)
    assert len(alphas) == (BINARY_CONVS[name] if variant == "agmm" else 0)
    fc = [p for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param)) if p[0] == "fc"]
    assert fc and not any(p in binary for p in fc)


def test_real_forward_and_gradient_reach_every_parameter():
    model = models.create("small_cnn", variant="agmm", timesteps=2, input_shape=(12, 12, 1), rngs=1)
    x = random_inputs.uniform(0, (4, 12, 12, 1)) * 3

    def loss(m):
        return jnp.mean(m(x) ** 2)

    grads = nnx.jit(nnx.grad(loss))(model)
    for path, g in nnx.to_flat_state(grads):
        assert bool(jnp.any(g[...] != 0)), f"no gradient reaches {path}"


def test_static_image_equals_the_image_repeated_over_time():
    model = models.create("small_cnn", variant="agmm", timesteps=2, input_shape=(12, 12, 3), rngs=2)
    x = random_inputs.normal(1, (2, 12, 12, 3))
    # one compiled program for both calls: jit traces once per input rank
    forward = nnx.jit(lambda m, v: m(v))
    static = forward(model, x)
    repeated = forward(model, jnp.broadcast_to(x, (2,) + x.shape))
    np.testing.assert_allclose(np.asarray(static), np.asarray(repeated), rtol=1e-4, atol=1e-4)


def test_time_fold_switch_gives_the_same_network():
    x = random_inputs.normal(2, (2, 3, 12, 12, 2))
    nets = [models.create("small_cnn", variant="agmm", timesteps=2, input_shape=(12, 12, 2), time_fold=f, rngs=3) for f in (True, False)]
    outs = [nnx.jit(lambda m: m(x))(net) for net in nets]
    np.testing.assert_allclose(np.asarray(outs[0]), np.asarray(outs[1]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["tiny_resnet", *(pytest.param(n, marks=pytest.mark.slow) for n in ("reference", "resnet19"))])
def test_remat_recomputes_and_keeps_gradients(name, monkeypatch):
    """Recomputing each layer / block gives the same loss and gradients (BPTT over T=2), and the
    compiled step really recomputes: "block" runs every forward convolution twice, "conv" keeps
    the convolutions' outputs (or most of them), and both keep less than no recomputation
    (``ops.remat``; with ``nnx.remat`` XLA:CPU merged the recomputation back: the same bytes).
    The 3-block ResNet has ResNet-19's kinds of blocks (identity and strided 1x1-conv shortcuts)
    and compiles in seconds; ResNet-19 itself and the reference net (a VGG: the same
    ``remat_call`` around one layer instead of one block, 23-32 s) run with ``make test-slow``."""
    monkeypatch.setitem(models.FAMILIES, "tiny_resnet", TINY_RESNET)
    shape = SMALL_INPUTS.get(name) or TINY_RESNET.input_shape
    batch = {"image": random_inputs.uniform(3, (8,) + shape), "label": jnp.arange(8) % 3}

    def compiled(remat):
        """One plain-SGD BPTT step: its new parameters carry the gradients."""
        model = models.create(name, variant="agmm", timesteps=2, input_shape=shape, remat=remat, rngs=4)
        defs, state = create_train_state(model, optax.sgd(1.0))
        step = make_train_step(defs, optax.sgd(1.0), loss="mean_logits", donate=False).lower(state, batch).compile()
        new_state, metrics = step(state, batch)
        grads = jax.tree.map(lambda before, after: before - after, state.params, new_state.params)
        return (metrics["loss"], grads), step.as_text().count(" convolution("), step.memory_analysis().temp_size_in_bytes

    (value, grads), convolutions, kept = compiled(None)
    counts = {}
    for remat in ("conv", "block"):
        (value_r, grads_r), counts[remat], kept_r = compiled(remat)
        assert kept_r < 0.8 * kept, (remat, kept_r, kept)
        np.testing.assert_allclose(float(value_r), float(value), rtol=1e-5)
        for g, g_r in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r), strict=True):
            # params - new params resolve float32 ulps of |w| ~ 0.1 (1e-7), and recomputed BatchNorm
            # statistics round in another order: an AMD EPYC VM differed by 1.6e-7 on one of 3456
            # ResNet-19 kernel gradients of scale 0.08 (hence the term relative to that scale).
            scale = float(np.max(np.abs(np.asarray(g))))
            np.testing.assert_allclose(np.asarray(g_r), np.asarray(g), rtol=1e-4, atol=1e-7 + 1e-5 * scale)
    assert convolutions <= counts["conv"] < counts["block"]


def test_auto_remat_recomputes_deep_nets_over_long_windows(monkeypatch):
    """The default ``remat="auto"`` recomputes each layer / block ("conv") of a net with at least
    5 of them (VGG-11: 7 layers after the stem, ResNet-19: 16 blocks) in calls over T >= 8 steps,
    and nothing at T = 4, in a 1-step (online) call, or in the 3-layer reference net; "none" never,
    "conv" always."""
    policies = []
    real = ops.remat
    monkeypatch.setattr(ops, "remat", lambda fn, policy=None: policies.append(policy) or real(fn, policy))

    def recomputed(name, t, online=False, remat="auto"):
        policies.clear()
        model = models.create(name, variant="bsnn", timesteps=t, input_shape=(8, 8, 3), remat=remat, rngs=0)
        model, t = (nn.online(model, t=0), 1) if online else (model, t)
        nnx.eval_shape(lambda m, x: m(x), model, jnp.zeros((t, 2, 8, 8, 3)))
        assert all(p is REMAT_POLICIES["conv"] for p in policies)
        return len(policies)

    assert (recomputed("vgg11", 8), recomputed("vgg11", 4), recomputed("vgg11", 8, online=True)) == (7, 0, 0)
    assert (recomputed("resnet19", 8), recomputed("reference", 8), recomputed("reference", 16)) == (16, 0, 0)
    assert (recomputed("vgg11", 8, remat="none"), recomputed("reference", 4, remat="conv")) == (0, 3)


def test_neuron_options_reach_every_lif():
    model = models.create("small_cnn", neuron={"surrogate": "sigmoid", "beta": 4.0, "reset": "soft"})
    lifs = [m for _, m in nnx.iter_graph(model) if isinstance(m, nn.LIF)]
    assert len(lifs) == 3 and all(lif.surrogate == "sigmoid" and lif.beta == 4.0 and lif.reset == "soft" for lif in lifs)


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet20'; known: .*resnet19"):
        models.create("resnet20")
    with pytest.raises(ValueError, match="unknown variant 'xnor'; known: .*agmm"):
        models.create("small_cnn", variant="xnor")
    with pytest.raises(ValueError, match="unknown remat policy 'all'"):
        models.create("small_cnn", remat="all")
    with pytest.raises(ValueError, match="floating dtype such as 'bfloat16'"):
        models.create("small_cnn", compute_dtype="int8")
    model = models.create("small_cnn", timesteps=2)
    with pytest.raises(ValueError, match=r"built for inputs \[T, B, 28, 28, 1\].*got shape \(2, 1, 28, 28\)"):
        model(jnp.zeros((2, 1, 28, 28)))
    with pytest.raises(TypeError, match="floating-point"):
        model(jnp.zeros((2, 28, 28, 1), jnp.uint8))
    with pytest.raises(ValueError, match="built for T=2"):
        model(jnp.zeros((3, 2, 28, 28, 1)))
    with pytest.raises(ValueError, match="too small"):
        models.create("vggsnn", input_shape=(8, 8, 2))
