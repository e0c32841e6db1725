"""Online training at T = 3 worked out by hand, in numpy, on a network small enough to write down.

The network: event frames (2 x 2 x 1, flattened) -> FP linear (real input, no trace) -> LIF ->
linear (spike input, traced; FP, or +-1 for T-BSO) -> LIF -> FP linear readout (spike input,
traced). No BatchNorm, so nothing but the rules below decides the numbers. The numpy side follows
the documented rules only:

- LIF (AGMM Eq. 1-4): ``h = tau u[t-1] + x[t]``, ``s = 1[h >= 1]``, ``u[t] = h (1 - s)``; the
  surrogate ``ds/dh = max(0, 1 - |h - 1|)`` (Eq. 7, beta = 1). The membrane is carried as a
  constant (no gradient through time).
- Presynaptic trace (OTTT / BSO Alg. 1): ``a_hat[t] = lambda a_hat[t-1] + s[t]``, ``a_hat[0] = s[0]``.
- Step t's objective ``mean_b CE(out_t, y) / T`` (TET); its weight gradient of a spike-input
  layer is ``a_hat[t]^T delta[t]`` (OTTT), of the real-input layer ``x[t]^T delta[t]``.
- SGD with momentum (``m = g + mu m``, ``w -= lr m``); T-BSO, BSO paper Eq. 13-14.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from rich.console import Console

from bsnn_jax import models, nn, optim, train
from bsnn_jax.models.registry import Family
from bsnn_jax.nn import LIF, BinaryLinear
from bsnn_jax.train.online import make_online_train_step
from bsnn_jax.train.state import create_train_state

T, B, F, H1, H2, K = 3, 6, 4, 6, 5, 3
TAU = 0.5  # the LIF leak, and the trace decay the library defaults to
LR, MU = 0.5, 0.9  # large enough that the per-step updates change later steps' spikes
LAYERS = {"W1": ("fc1", "kernel"), "b1": ("fc1", "bias"), "W2": ("fc2", "kernel"), "W3": ("fc3", "kernel"), "b3": ("fc3", "bias")}
# T-BSO on the +-1 layer: beta1 = 0.5 and a threshold that flips some weights and not others
TBSO = {"threshold": 0.6, "beta1": 0.5, "beta2": 0.75, "eps": 0.0}


def problem(seed):
    """Weights and frames (drawn once, rounded to float32 as the library holds them) for which
    both LIF layers fire for about half of their inputs and the surrogates are mostly non-zero."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731
    params = {
        "W1": f32(rng.normal(0.2, 0.6, (F, H1))),
        "b1": f32(rng.normal(0.2, 0.2, H1)),
        "W2": f32(rng.normal(0.25, 0.6, (H1, H2))),
        "W3": f32(rng.normal(0, 0.7, (H2, K))),
        "b3": f32(rng.normal(0, 0.1, K)),
    }
    frames = f32(rng.uniform(0, 1.0, (B, T, 2, 2, 1)))
    labels = rng.integers(0, K, B)
    return params, frames, labels


PARAMS, FRAMES, LABELS = problem(74)
BATCHES = [(FRAMES, LABELS), problem(75)[1:]]  # a second batch: momentum, and traces that start afresh


# --------------------------------------------------------------------------------------------
# the hand computation


def tri(x):
    return np.maximum(0.0, 1.0 - np.abs(x))


def hand_step(p, x, y, carry, *, tau, lam):
    """One online time step: forward from the carried membranes and traces, the OTTT gradients."""
    u1, u2, a1, a2 = carry
    h1 = tau * u1 + x @ p["W1"] + p["b1"]
    s1 = (h1 >= 1).astype(float)
    a1 = s1 if a1 is None else lam * a1 + s1
    h2 = tau * u2 + s1 @ p["W2"]
    s2 = (h2 >= 1).astype(float)
    a2 = s2 if a2 is None else lam * a2 + s2
    out = s2 @ p["W3"] + p["b3"]
    e = np.exp(out - out.max(1, keepdims=True))
    softmax = e / e.sum(1, keepdims=True)
    loss = np.mean(-np.log(softmax[np.arange(len(y)), y])) / T
    d_out = (softmax - np.eye(K)[y]) / (len(y) * T)
    d_h2 = (d_out @ p["W3"].T) * tri(h2 - 1)
    d_h1 = (d_h2 @ p["W2"].T) * tri(h1 - 1)
    grads = {"W1": x.T @ d_h1, "b1": d_h1.sum(0), "W2": a1.T @ d_h2, "W3": a2.T @ d_out, "b3": d_out.sum(0)}
    info = {"out": out, "loss": loss, "s1": s1, "s2": s2, "a1": a1, "a2": a2, "d_h2": d_h2, "d_out": d_out, "h1": h1, "h2": h2}
    return grads, (h1 * (1 - s1), h2 * (1 - s2), a1, a2), info


def hand_sgd(p, m, g):
    m = {k: g[k] + MU * m[k] for k in p}
    return {k: p[k] - LR * m[k] for k in p}, m


def hand_t_bso(w, m, v, g, t):
    """BSO paper Eq. 13-14 on the +-1 kernel: the flips and the new (w, m, v)."""
    m = TBSO["beta1"] * m + (1 - TBSO["beta1"]) * g
    v = v.copy()
    v[t] = TBSO["beta2"] * v[t] + (1 - TBSO["beta2"]) * np.mean(g**2)
    margin = w * m - TBSO["threshold"] * np.sqrt(v[t] + TBSO["eps"])
    flip = margin > 0
    return np.where(flip, -w, w), m, v, flip, margin


def sign_changes(before, after):
    """The flips metric: weights of the binarizable layer whose sign (sign(0) = +1) changed."""
    return int(np.sum((before >= 0) != (after >= 0)))


def hand_run(batches, *, update, tau=TAU, lam=TAU, t_bso=False):
    """What the online step should do to PARAMS over ``batches``, one step per batch."""
    p = {k: v.copy() for k, v in PARAMS.items()}
    if t_bso:
        p["W2"] = np.where(p["W2"] >= 0, 1.0, -1.0)
    fp = [k for k in p if not (t_bso and k == "W2")]
    m = {k: np.zeros_like(p[k]) for k in fp}
    bso = {"m": np.zeros_like(p["W2"]), "v": np.zeros(T)}
    metrics, margins = [], []
    for frames, labels in batches:
        x = frames.reshape(len(labels), T, F).transpose(1, 0, 2)
        carry = (np.zeros((len(labels), H1)), np.zeros((len(labels), H2)), None, None)
        total = {k: np.zeros_like(v) for k, v in p.items()}
        loss, logits, norms, flips = 0.0, 0.0, [], 0
        for t in range(T):
            g, carry, info = hand_step(p, x[t], labels, carry, tau=tau, lam=lam)
            margins += [np.abs(info["h1"] - 1).min()] + ([] if t_bso else [np.abs(info["h2"] - 1).min()])
            loss, logits = loss + info["loss"], logits + info["out"]
            norms.append(np.sqrt(sum(np.sum(v**2) for v in g.values())))
            if update == "per_step":
                new, m = hand_sgd({k: p[k] for k in fp}, m, {k: g[k] for k in fp})
                if t_bso:
                    new["W2"], bso["m"], bso["v"], _, margin = hand_t_bso(p["W2"], bso["m"], bso["v"], g["W2"], t)
                    margins.append(np.abs(margin).min())
                flips += sign_changes(p["W2"], new["W2"])
                p = new
            else:
                total = {k: total[k] + g[k] for k in total}
        if update == "per_batch":
            new, m = hand_sgd(p, m, total)
            flips, p = sign_changes(p["W2"], new["W2"]), new
            grad_norm = np.sqrt(sum(np.sum(v**2) for v in total.values()))
        else:
            grad_norm = np.mean(norms)
        accuracy = np.mean(np.argmax(logits, 1) == labels)
        metrics.append({"loss": loss, "grad_norm": grad_norm, "accuracy": accuracy, "flips": flips})
    # float32 (library) and float64 (here) agree on every spike and flip only away from the thresholds
    assert min(margins) > 1e-4, min(margins)
    return p, m, bso, metrics


# --------------------------------------------------------------------------------------------
# the library's side


class Tiny(nnx.Module):
    """The network above; ``[B, 2, 2, 1]`` or ``[T', B, 2, 2, 1]`` -> logits ``[T', B, K]``."""

    def __init__(self, *, binary=False, neuron=None, rngs=None):
        rngs = rngs or nnx.Rngs(0)
        neuron = neuron or {}
        self.fc1 = BinaryLinear(F, H1, binary=False, spike_input=False, rngs=rngs)
        self.lif1 = LIF(**neuron)
        # binarizable: the flip ratio and gradient statistics need one such layer, FP or not
        self.fc2 = BinaryLinear(H1, H2, binary=binary, binarizable=True, use_bias=False, rngs=rngs)
        self.lif2 = LIF(**neuron)
        self.fc3 = BinaryLinear(H2, K, rngs=rngs)
        for name, (layer, kind) in LAYERS.items():
            getattr(getattr(self, layer), kind)[...] = jnp.asarray(PARAMS[name], jnp.float32)

    def __call__(self, x):
        x = x[None] if x.ndim == 4 else x
        x = x.reshape(x.shape[:2] + (-1,))
        return self.fc3(self.lif2(self.fc2(self.lif1(self.fc1(x)))))


def as_batch(frames, labels):
    return {"image": jnp.asarray(frames, jnp.float32), "label": jnp.asarray(labels, jnp.int32)}


def leaf(tree, name):
    layer, kind = LAYERS[name]
    return np.asarray(tree[layer][kind])


def run_library(tx, *, update, binary=False):
    model = Tiny(binary=binary)
    if binary:
        model = nn.latent_free(model)
    tx = tx(model)
    defs, state = create_train_state(model, tx)
    step = make_online_train_step(defs, tx, timesteps=T, update=update, donate=False)
    metrics = []
    for frames, labels in BATCHES:
        state, m = step(state, as_batch(frames, labels))
        metrics.append(jax.device_get(m))
    return state, metrics


def check_metrics(ours, hand):
    for a, b in zip(ours, hand, strict=True):
        np.testing.assert_allclose(float(a["loss"]), b["loss"], rtol=1e-5)
        np.testing.assert_allclose(float(a["grad_norm"]), b["grad_norm"], rtol=1e-5)
        np.testing.assert_allclose(float(a["accuracy"]), b["accuracy"], rtol=1e-6)
        assert int(a["flips"]) == b["flips"]


# --------------------------------------------------------------------------------------------
# (a) the per-step gradients and traces


@pytest.mark.parametrize("trace_decay", [TAU, 0.25])
def test_each_time_steps_gradient_is_delta_times_the_trace(trace_decay):
    """The online model's gradient at t = 0, 1, 2 (``nn.online`` + ``nnx.grad``, the online
    step's inner call), its carried traces and membranes, against the hand computation."""
    frames, labels = BATCHES[0]
    model = Tiny()
    nn.reset_online_state(model)
    x = jnp.asarray(np.swapaxes(frames, 0, 1), jnp.float32)

    @nnx.jit  # eager op-by-op dispatch costs more than the two compiles (no trace yet, trace)
    @nnx.grad
    def gradient(m, v):
        return jnp.mean(-jax.nn.log_softmax(m(v)[0])[jnp.arange(B), labels]) / T

    xs = frames.reshape(B, T, F).transpose(1, 0, 2)
    carry = (np.zeros((B, H1)), np.zeros((B, H2)), None, None)
    for t in range(T):
        model = nn.online(model, t=t, trace_decay=trace_decay)  # a view of the last: the carried state goes along
        grads = gradient(model, x[t : t + 1])
        hand, carry, info = hand_step(PARAMS, xs[t], labels, carry, tau=TAU, lam=trace_decay)
        for name in LAYERS:
            np.testing.assert_allclose(leaf(grads, name), hand[name], rtol=1e-5, atol=1e-8, err_msg=f"{name} at t={t}")
        np.testing.assert_allclose(np.asarray(model.fc2.trace[...])[0], info["a1"], rtol=1e-6, err_msg=f"t={t}")
        np.testing.assert_allclose(np.asarray(model.fc3.trace[...])[0], info["a2"], rtol=1e-6, err_msg=f"t={t}")
        np.testing.assert_allclose(np.asarray(model.lif1.membrane[...]), carry[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(model.lif2.membrane[...]), carry[1], rtol=1e-5, atol=1e-6)
        assert model.fc1.trace is None  # real-valued input: plain gradient, no trace
        if t > 0:  # the case is one where the trace, not the spikes alone, decides the gradient
            assert np.abs(hand["W2"] - info["s1"].T @ info["d_h2"]).max() > 1e-3
            assert np.abs(hand["W3"] - info["s2"].T @ info["d_out"]).max() > 1e-3


# --------------------------------------------------------------------------------------------
# (b) the updates


@pytest.mark.parametrize("update", ["per_batch", "per_step"])
def test_sgd_updates_equal_the_hand_computed_ones(update):
    """Two batches of the online step with SGD (momentum 0.9): ``per_batch`` one update with the
    T gradients summed, ``per_step`` T sequential updates, each from the hand-computed gradient
    of the parameters of that moment; parameters, momenta and metrics against numpy."""
    state, ours = run_library(lambda _: optax.sgd(LR, momentum=MU), update=update)
    p, m, _, hand = hand_run(BATCHES, update=update)
    for name in LAYERS:
        np.testing.assert_allclose(leaf(state.params, name), p[name], rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(leaf(state.opt_state[0].trace, name), m[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert int(state.step) == 2
    check_metrics(ours, hand)


def test_per_step_and_per_batch_hand_computations_differ():
    """Guards the test above: on this case the two modes end in clearly different parameters."""
    a, _, _, _ = hand_run(BATCHES, update="per_step")
    b, _, _, _ = hand_run(BATCHES, update="per_batch")
    assert max(np.abs(a[k] - b[k]).max() for k in a) > 1e-2


def test_per_step_t_bso_flips_the_hand_computed_weights():
    """T-BSO on the +-1 layer (v[t] per time step), SGD on the rest, an update after each of the
    T steps of two batches: kernels, momentum, v, update count and flips against numpy."""

    def tx(model):
        return optim.binary_partition(model, binary=optim.t_bso(T, **TBSO), fp=optax.sgd(LR, momentum=MU))

    state, ours = run_library(tx, update="per_step", binary=True)
    p, _, bso, hand = hand_run(BATCHES, update="per_step", t_bso=True)
    np.testing.assert_array_equal(leaf(state.params, "W2"), p["W2"])
    for name in ("W1", "b1", "W3", "b3"):
        np.testing.assert_allclose(leaf(state.params, name), p[name], rtol=1e-5, atol=1e-6, err_msg=name)
    flip_state = state.opt_state.inner_states["binary"].inner_state
    np.testing.assert_allclose(leaf(flip_state.momentum, "W2"), bso["m"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(np.asarray(flip_state.second_moment["fc2"]["kernel"]), bso["v"], rtol=1e-5)
    assert int(flip_state.count) == 2 * T
    check_metrics(ours, hand)
    assert 0 < sum(h["flips"] for h in hand) < 2 * T * H1 * H2 / 2  # some flips, not all


# --------------------------------------------------------------------------------------------
# train.trace_decay through fit


@pytest.fixture(scope="module")
def tiny_family():
    """The network above registered as a model family for the length of this module."""
    family = Family(lambda *, opts, **_: Tiny(neuron=opts.neuron), (2, 2, 1), K, "hand-worked online test net")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(models.FAMILIES, "online_handworked", family)
        yield "online_handworked"


@pytest.mark.parametrize("trace_decay, tau", [(0.25, TAU), (None, 0.75)])
def test_fit_uses_train_trace_decay_or_the_neuron_leak(tiny_family, tmp_path, trace_decay, tau, make_config):
    """One OTTT step of ``fit`` on a dataset that is one batch (so its order does not matter)
    ends at the hand-computed parameters for lambda = ``train.trace_decay`` (0.25), or, unset,
    ``model.neuron.tau`` (0.75); a library that kept the default 0.5 would be far off."""
    frames, labels = BATCHES[0]
    path = tmp_path / "data.npz"
    np.savez(path, x_train=frames.astype(np.float32), y_train=labels, x_test=frames.astype(np.float32), y_test=labels)
    config = make_config(
        **{
            "dataset.name": f"npz:{path}",
            "model.name": tiny_family,
            "model.variant": "fp",
            "model.timesteps": T,
            "model.neuron.tau": tau,
            "batch_size": B,
            "eval_batch_size": B,
            "num_epochs": 1,
            "train.mode": "online",
            "train.online_update": "per_batch",
            "train.trace_decay": trace_decay,
            "optimizer.momentum": 0.0,
            "optimizer.weight_decay": 0.0,
            "optimizer.learning_rate": LR,
            "schedule.name": "constant",
        }
    )
    train.fit(config, tmp_path / "run", console=Console(quiet=True))
    restored = train.restore(tmp_path / "run")
    state, step = restored, restored.step
    lam = tau if trace_decay is None else trace_decay
    p, _, _, _ = hand_run(BATCHES[:1], update="per_batch", tau=tau, lam=lam)
    default, _, _, _ = hand_run(BATCHES[:1], update="per_batch", tau=tau, lam=0.5)
    assert step == 1 and max(np.abs(p[k] - default[k]).max() for k in p) > 1e-3
    for name in LAYERS:
        np.testing.assert_allclose(leaf(state.params, name), p[name], rtol=1e-5, atol=1e-6, err_msg=name)
