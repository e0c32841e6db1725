"""NIR export and import, checked against a NIR interpreter written here in numpy from NIR's spec.

The interpreter (``run_graph``) runs a ``nir.NIRGraph`` as the NIR documentation defines its
nodes, with nothing from bsnn_jax: NCHW convolutions by explicit sums over kernel taps, the LIF
ODE ``tau dv/dt = (v_leak - v) + r I`` integrated by forward Euler at step ``dt``, spike
``v > v_threshold``, reset to ``v_reset``, and a node's inputs summed. The exported graph of a
model with trained-like weights and BN statistics must give the model's spikes and logits.

Tolerance: the graph computes the same real numbers in another order (BN folded, another conv
summation order), a few float32 ulps per layer; logits are compared to 1e-4 of their scale.
A membrane within that rounding of the threshold would fire in one only; with these seeds none does.
"""

from __future__ import annotations

import jax.numpy as jnp
import nir
import numpy as np
import pytest
from export.test_export_fold import TINY_RESNET, trained_like  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import models
from bsnn_jax import nn as bsnn_nn
from bsnn_jax.data.base import Normalization
from bsnn_jax.export import nir as bnir
from bsnn_jax.export import nir_import as bnir_import
from bsnn_jax.models import registry
from bsnn_jax.models.vgg import SpikingVGG

T = 3
CASES = {
    "small_cnn_bsnn": dict(name="small_cnn", variant="bsnn", timesteps=T, num_classes=10, input_shape=(8, 8, 1)),
    "small_cnn_fp": dict(name="small_cnn", variant="fp", timesteps=T, num_classes=10, input_shape=(8, 8, 1)),
    "tiny_resnet_bsnn": dict(name="tiny_resnet", variant="bsnn", timesteps=T, num_classes=5, input_shape=(8, 8, 3)),
    "tiny_vgg11_bsnn": dict(name="tiny_vgg11", variant="bsnn", timesteps=T, num_classes=5, input_shape=(8, 8, 3)),
    "mlp_bsnn": dict(name="mlp", variant="bsnn", timesteps=T, num_classes=5, input_shape=(2, 3, 4)),
    "conv1d_bsnn": dict(name="conv1d", variant="bsnn", timesteps=T, num_classes=5, input_shape=(16, 1, 2)),
}
# VGG-11's head (global average pool) and biased first conv, at a size that compiles in seconds.
TINY_VGG11 = registry.Family(
    lambda **kw: SpikingVGG((8, "A", 16, 16), head="gap", first_conv_bias=True, name="tiny_vgg11", **kw), (8, 8, 3), 5, "test-only VGG-11"
)


# ----------------------------------------------------------------------------- the interpreter
def _pads(padding, kernel, dilation):
    """NIR/PyTorch padding as (lo, hi) per spatial axis; "same" puts the odd pixel last, as PyTorch."""
    if isinstance(padding, str):
        return (
            [(0, 0)] * len(kernel)
            if padding == "valid"
            else [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation, strict=True)]
        )
    return [(int(p), int(p)) for p in np.broadcast_to(padding, len(kernel))]


def _taps(x, kernel, stride, dilation, out):
    """For each kernel tap, the input values it meets at every output position: ``x_pad[:, :, s*i + d*p]``."""
    for tap in np.ndindex(*kernel):
        idx = tuple(slice(d * t, d * t + s * (o - 1) + 1, s) for t, s, d, o in zip(tap, stride, dilation, out, strict=True))
        yield tap, x[(slice(None), slice(None)) + idx]


def _conv(x, w, b, stride, padding, dilation=1, groups=1):
    """N C (spatial...) x O I (kernel...): ``y[n, o, i] = b[o] + sum_{c in o's group, p} x_pad[n, c, s i + d p] w[o, c, p]``."""
    nd = w.ndim - 2
    kernel, stride, dilation = w.shape[2:], [int(v) for v in np.broadcast_to(stride, nd)], [int(v) for v in np.broadcast_to(dilation, nd)]
    pads = _pads(padding, kernel, dilation)
    x = np.pad(x, [(0, 0), (0, 0), *pads])
    out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation, strict=True)]
    y = np.zeros((x.shape[0], w.shape[0], *out), np.float64)
    cin, cout = w.shape[1], w.shape[0] // groups
    for tap, patch in _taps(x, kernel, stride, dilation, out):
        for g in range(groups):
            wt = w[(slice(g * cout, (g + 1) * cout), slice(None)) + tap]
            y[:, g * cout : (g + 1) * cout] += np.einsum("nc...,oc->no...", patch[:, g * cin : (g + 1) * cin], wt)
    return y + np.asarray(b).reshape((1, -1) + (1,) * nd)


def _pool(x, kernel, stride, padding, average):
    """Sum (or average, padded zeros counted as PyTorch does) over each window."""
    kernel, stride = [int(v) for v in np.broadcast_to(kernel, 2)], [int(v) for v in np.broadcast_to(stride, 2)]
    x = np.pad(x, [(0, 0), (0, 0), *_pads(padding, kernel, (1, 1))])
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[2:], kernel, stride, strict=True)]
    y = sum(patch for _, patch in _taps(x, kernel, stride, (1, 1), out))
    return y / np.prod(kernel) if average else y


def _order(graph):
    """Kahn's order: every node after its inputs. When every remaining node waits (a cycle), the first one
    with a computed input goes next, and its edges from nodes not yet computed are back edges."""
    preds = {k: [a for a, b in graph.edges if b == k] for k in graph.nodes}
    order, back = [], set()
    while len(order) < len(graph.nodes):
        waiting = [k for k in graph.nodes if k not in order]
        ready = [k for k in waiting if all(p in order for p in preds[k])]
        if not ready:
            k = next(k for k in waiting if any(p in order for p in preds[k]))
            back |= {(p, k) for p in preds[k] if p not in order}
            ready = [k]
        order.append(ready[0])
    return order, preds, back


def _neuron(node, i, v, dt):
    """One Euler step of NIR's LIF (``tau dv/dt = v_leak - v + r I``) or IF (``dv/dt = r I``); spike ``v > v_threshold``."""
    if isinstance(node, nir.LIF):
        v = v + dt / node.tau * (node.v_leak - v + node.r * i)
    else:
        v = v + dt * node.r * i
    z = v > node.v_threshold
    reset = 0.0 if node.v_reset is None else node.v_reset
    return z.astype(np.float64), np.where(z, reset, v)


def _node(node, i):
    """A stateless node's output (NIR definitions)."""
    if isinstance(node, nir.Conv2d | nir.Conv1d):
        return _conv(i, node.weight, node.bias, node.stride, node.padding, node.dilation, node.groups)
    if isinstance(node, nir.AvgPool2d | nir.SumPool2d):
        return _pool(i, node.kernel_size, node.stride, node.padding, isinstance(node, nir.AvgPool2d))
    if isinstance(node, nir.Flatten):
        return i.reshape(len(i), -1)
    if isinstance(node, nir.Affine):
        return i @ node.weight.T + node.bias
    if isinstance(node, nir.Linear):
        return i @ node.weight.T
    if isinstance(node, nir.Scale):
        return i * node.scale
    if isinstance(node, nir.Threshold):
        return (i > node.threshold).astype(np.float64)
    raise AssertionError(f"the interpreter does not know {type(node).__name__}")


def run_graph(graph, x, steps, dt=1.0):
    """Outputs ``[steps, N, ...]`` and the spikes of every LIF/IF node, for input ``x [N, C, ...]`` at every step
    (or ``[steps, N, C, ...]``, one input per step). An edge that closes a cycle delivers its source's value of
    the step before (0 before the first step): the one-step delay of NIR's recurrence."""
    order, preds, back = _order(graph)
    membrane, previous, outs = {}, {}, []
    spikes = {k: [] for k, n in graph.nodes.items() if isinstance(n, nir.LIF | nir.IF)}
    for t in range(steps):
        val = {}
        for k in order:
            node = graph.nodes[k]
            if isinstance(node, nir.Input):
                val[k] = (x[t] if x.ndim > 1 + len(node.input_type["input"]) else x).astype(np.float64)
                continue
            i = sum(previous.get(p, 0.0) if (p, k) in back else val[p] for p in preds[k])
            if k in spikes:
                val[k], membrane[k] = _neuron(node, i, membrane.get(k, np.zeros_like(i)), dt)
                spikes[k].append(val[k])
            elif isinstance(node, nir.Output):
                val[k] = i
                outs.append(i)
            else:
                val[k] = _node(node, i)
        previous = val
    return np.stack(outs), {k: np.stack(s) for k, s in spikes.items()}


# ----------------------------------------------------------------------------- fixtures
def _nir_layout(name, x):
    """One example per row as the exported graph takes it: (C, H, W), a signal's (C, L), mlp's flat (F,)."""
    if name == "mlp":
        return x.reshape(len(x), -1)
    if name == "conv1d":
        return x.reshape(len(x), x.shape[1], x.shape[-1]).transpose(0, 2, 1)
    return x.transpose(0, 3, 1, 2)


def _imported_layout(name, x):
    """What the imported model takes: NIR's input shape in bsnn_jax's channel-last layout."""
    return np.ascontiguousarray(np.moveaxis(_nir_layout(name, x), 1, -1)) if name != "mlp" else x.reshape(len(x), -1)


@pytest.fixture(scope="module")
def cases():
    """Per case: the trained-like model, its graph, the input and both networks' logits and spikes."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.FAMILIES, "tiny_resnet", TINY_RESNET)
        mp.setitem(registry.FAMILIES, "tiny_vgg11", TINY_VGG11)
        for case, kw in CASES.items():
            kw = dict(kw)
            name = kw.pop("name")
            rng = np.random.default_rng(sum(map(ord, case)))
            calibration = rng.normal(size=(16,) + kw["input_shape"]).astype(np.float32)
            x = rng.normal(size=(8,) + kw["input_shape"]).astype(np.float32)
            model = trained_like(name, kw, calibration, seed=2)
            graph = bnir.to_nir(model)
            logits = np.asarray(nnx.jit(lambda m, x: m(x))(model, x))
            nir_logits, nir_spikes = run_graph(graph, _nir_layout(name, x), T)
            out[case] = dict(model=model, graph=graph, x=x, logits=logits, nir_logits=nir_logits, nir_spikes=nir_spikes, name=name)
    return out


# ----------------------------------------------------------------------------- tests
def test_lif_mapping_reproduces_our_lif_step_by_step():
    """A hand-worked input: tau_b = 0.5, v_th = 1: u = 0.6, 0.3 + 0.8 = 1.1 -> spike, reset 0, then 1.0 -> spike (>=)."""
    lif = models.common.LIF(tau=0.5, v_th=1.0)
    p = bnir.lif_parameters(lif, (1,), dt=1e-4)
    node = nir.LIF(**p)
    x = np.array([0.6, 0.8, 1.0, 0.2], np.float32)
    u, got = np.zeros(1, np.float32), []
    for xt in x:
        u = (u + np.float32(1e-4) / node.tau * (node.v_leak - u + node.r * xt)).astype(np.float32)
        z = u > node.v_threshold
        u = np.where(z, node.v_reset, u).astype(np.float32)
        got.append(int(z[0]))
    assert got == [0, 1, 1, 0]
    np.testing.assert_allclose(node.tau, 2e-4, rtol=1e-6)
    np.testing.assert_allclose(node.r, 2.0)


@pytest.mark.parametrize("case", list(CASES))
def test_graph_runs_like_the_model(cases, case):
    c = cases[case]
    scale = np.abs(c["logits"]).max()
    np.testing.assert_allclose(c["nir_logits"], c["logits"], atol=1e-4 * scale)
    fired = sum(s.sum() for s in c["nir_spikes"].values())
    assert fired > 0.05 * sum(s.size for s in c["nir_spikes"].values()), "a test without spikes would prove little"


def test_structure_small_cnn(cases):
    g = cases["small_cnn_bsnn"]["graph"]
    kinds = [type(g.nodes[k]).__name__ for k in g.nodes]
    assert kinds == ["Input", "Conv2d", "LIF", "AvgPool2d", "Conv2d", "LIF", "AvgPool2d", "Conv2d", "LIF", "Flatten", "Affine", "Output"]
    assert list(g.nodes["input"].input_type["input"]) == [1, 8, 8]
    assert list(g.nodes["output"].output_type["output"]) == [10]
    assert g.nodes["units.1"].weight.shape == (64, 32, 3, 3)
    assert g.nodes["fc"].weight.shape == (10, 128 * 2 * 2)


@pytest.mark.parametrize("unit", ["units.1", "units.2"])
def test_binary_kernels_are_plus_minus_folded_gamma(cases, unit):
    """Each output channel of a binary conv holds exactly two values, +-gamma * s (s = BN_scale / sqrt(var + eps)),
    with the signs of the latent weights (flipped where BN's scale is negative)."""
    c = cases["small_cnn_bsnn"]
    m = c["model"].units[int(unit[-1])]
    w = np.asarray(m.conv.kernel[...], np.float64)  # HWIO latent weights
    gamma = np.abs(w).mean(axis=(0, 1, 2))
    s = np.asarray(m.bn.scale[...], np.float64) / np.sqrt(np.asarray(m.bn.var[...], np.float64) + m.bn.epsilon)
    nir_w = c["graph"].nodes[unit].weight  # OIHW
    for o in range(nir_w.shape[0]):
        values = np.unique(np.abs(nir_w[o]))
        assert len(values) == 1, f"channel {o} holds {len(values)} magnitudes"
        np.testing.assert_allclose(values[0], abs(gamma[o] * s[o]), rtol=1e-5)
        expected_sign = np.where(w[..., o] >= 0, 1.0, -1.0).transpose(2, 0, 1) * np.sign(s[o])
        np.testing.assert_array_equal(np.sign(nir_w[o]), expected_sign)


def test_bn_is_folded_into_conv_bias(cases):
    """conv(x, W_nir) + b_nir equals our conv followed by BN in evaluation mode, on one random map."""
    c = cases["small_cnn_bsnn"]
    unit = c["model"].units[1]
    x = (np.random.default_rng(0).random((2, 8, 8, 32)) < 0.3).astype(np.float32)
    ours = np.asarray(unit(jnp.asarray(x[None])))[0]  # [B, H, W, C]
    node = c["graph"].nodes["units.1"]
    theirs = _conv(x.transpose(0, 3, 1, 2), node.weight, node.bias, node.stride, node.padding).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(theirs, ours, atol=1e-4 * np.abs(ours).max())


def test_resnet_residual_sums_are_edges(cases):
    g = cases["tiny_resnet_bsnn"]["graph"]
    into = lambda k: sorted(a for a, b in g.edges if b == k)
    # block 1's LIF reads the stream after block 0: block 0's conv plus the stem (identity shortcut)
    assert into("blocks.1.lif") == ["blocks.0.unit", "stem.unit"]
    # block 1 is strided: its output is its conv plus its projection shortcut
    assert into("blocks.2.lif") == ["blocks.1.shortcut.proj", "blocks.1.unit"]


@pytest.mark.parametrize("case, kind", [("small_cnn_bsnn", nir.Conv2d), ("mlp_bsnn", nir.Affine), ("conv1d_bsnn", nir.Conv1d)])
def test_normalization_node(cases, case, kind):
    """With the dataset normalization (per channel: the last axis of the example), the graph on raw
    images equals the model on normalized ones; the importer gives it back (mlp: as a layer)."""
    c = cases[case]
    channels = c["x"].shape[-1]
    norm = Normalization(1 / 255, tuple(np.linspace(0.2, 0.4, channels)), tuple(np.linspace(0.3, 0.5, channels)))
    raw = np.random.default_rng(1).integers(0, 256, c["x"].shape).astype(np.float32)
    graph = bnir.to_nir(c["model"], normalization=norm)
    assert isinstance(graph.nodes["normalize"], kind)
    got, _ = run_graph(graph, _nir_layout(c["name"], raw), T)
    want = np.asarray(c["model"](jnp.asarray(norm(raw))))
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    imported = bnir_import.from_nir(graph, timesteps=T)
    if c["name"] == "mlp":
        assert imported.normalization is None and "normalize" in imported.model.names
    else:
        np.testing.assert_allclose(
            np.asarray(imported.normalization.std) / imported.normalization.scale, np.asarray(norm.std) / norm.scale, rtol=1e-5
        )
        np.testing.assert_allclose(
            np.asarray(imported.normalization.mean) / imported.normalization.scale, np.asarray(norm.mean) / norm.scale, rtol=1e-5
        )


def test_written_file_reads_back(cases, tmp_path):
    g = cases["tiny_resnet_bsnn"]["graph"]
    nir.write(tmp_path / "m.nir", g)
    back = nir.read(tmp_path / "m.nir")
    assert sorted(back.edges) == sorted(g.edges)
    np.testing.assert_array_equal(back.nodes["blocks.1.unit"].weight, g.nodes["blocks.1.unit"].weight)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(variant="agmm"), "AGMM Eq. 11"),
        (dict(variant="bsnn", neuron={"reset": "soft"}), "reset='soft'"),
    ],
)
def test_refused_with_reason(kw, words):
    model = nnx.eval_shape(lambda: models.create("small_cnn", timesteps=2, input_shape=(8, 8, 1), **kw))
    with pytest.raises(bnir.NIRExportError, match=words.replace("(", r"\(").replace(".", r"\.")):
        bnir.to_nir(model)


def test_maxpool_stem_refused():
    model = nnx.eval_shape(lambda: models.create("resnet18", variant="fp", timesteps=1, input_shape=(32, 32, 3)))
    with pytest.raises(bnir.NIRExportError, match="max-pool"):
        bnir.to_nir(model)


# ----------------------------------------------------------------------------- import
@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_gives_the_same_logits(cases, case, tmp_path):
    """export -> file -> import, every family that exports (ResNet's residual sums included): the imported
    model's logits equal the original's, and exactly the original's binary layers come back binary."""
    c = cases[case]
    nir.write(tmp_path / "m.nir", c["graph"])
    imported = bnir_import.from_nir(nir.read(tmp_path / "m.nir"), timesteps=T)
    got = np.asarray(nnx.jit(lambda m, x: m(x))(imported.model, _imported_layout(c["name"], c["x"])))
    np.testing.assert_allclose(got, c["logits"], atol=1e-4 * np.abs(c["logits"]).max())
    assert imported.normalization is None
    ours = sorted(".".join(map(str, p[:-2])) for p, v in nnx.to_flat_state(nnx.state(c["model"], bsnn_nn.BinaryParam)))
    theirs = sorted(imported.model.binary_nodes())
    assert theirs == ours and (len(ours) > 0) == case.endswith("bsnn")


def test_import_reads_normalization_and_snntorch_lif_convention(cases):
    """A graph written at snnTorch's dt = 1e-4 with the normalization node imports at dt = 1e-4."""
    c = cases["small_cnn_bsnn"]
    norm = Normalization(1 / 255, (0.3,), (0.4,))
    imported = bnir_import.from_nir(bnir.to_nir(c["model"], dt=1e-4, normalization=norm), timesteps=T, dt=1e-4)
    np.testing.assert_allclose(imported.normalization.std[0] / imported.normalization.scale, 0.4 * 255, rtol=1e-5)
    np.testing.assert_allclose(imported.normalization.mean[0] / imported.normalization.scale, 0.3 * 255, rtol=1e-5)
    neuron = imported.model.node("lifs.0")
    assert neuron.lif.tau == pytest.approx(0.5, abs=1e-6) and neuron.lif.v_th == pytest.approx(1.0, abs=1e-6)
    assert neuron.gain is None and neuron.offset is None  # r dt / tau = 1 to float32 rounding: no input map


def test_bso_latent_free_kernels_export_with_gamma_one(cases):
    """A BSO/T-BSO net (latent-free +-1 kernels, nn.latent_free): gamma = 1, so each channel's NIR kernel is +-|s|."""
    c = cases["small_cnn_bsnn"]
    graphdef, state = nnx.split(c["model"])
    bso = nnx.merge(graphdef, nnx.clone(state))
    for unit in bso.units[1:]:
        unit.conv.kernel[...] = jnp.where(unit.conv.kernel[...] >= 0, 1.0, -1.0)
    bso = bsnn_nn.latent_free(bso)
    graph = bnir.to_nir(bso)
    unit = bso.units[2]
    s = np.asarray(unit.bn.scale[...], np.float64) / np.sqrt(np.asarray(unit.bn.var[...], np.float64) + unit.bn.epsilon)
    np.testing.assert_allclose(np.abs(graph.nodes["units.2"].weight).max(axis=(1, 2, 3)), np.abs(s), rtol=1e-6)
    got, _ = run_graph(graph, c["x"].transpose(0, 3, 1, 2), T)
    want = np.asarray(nnx.jit(lambda m, x: m(x))(bso, c["x"]))
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
