"""NIR export and import of the recurrent spiking MLP (``nn.RecurrentLIF``: ``H[t] = tau U[t-1] + X[t] + V_b S[t-1]``).

The exported graph is checked against test_nir's numpy interpreter of NIR graphs (``run_graph``,
written from the NIR spec with nothing from bsnn_jax): an edge that closes a cycle carries its
source's value of the step before (0 before the first step), the one-step delay NIR's cycles mean.

A tiny two-layer MLP (widths 8, 6; the registry's 256-wide one compiles slower) with trained-like
weights (test_export_fold) and inputs large enough that both layers and V see spikes.
"""

from __future__ import annotations

import jax.numpy as jnp
import nir
import numpy as np
import pytest
from export.test_export_fold import trained_like  # tests/ is on sys.path (rootdir conftest)
from export.test_nir import run_graph
from flax import nnx

from bsnn_jax import models
from bsnn_jax import nn as bsnn_nn
from bsnn_jax.export import nir as bnir
from bsnn_jax.export import nir_import as bnir_import
from bsnn_jax.models import registry
from bsnn_jax.models.mlp import SpikingMLP

T, INPUT, HIDDEN, CLASSES = 4, 6, (8, 6), 3
TINY_MLP = registry.Family(lambda **kw: SpikingMLP(HIDDEN, name="mlp", **kw), (INPUT,), CLASSES, "test-only MLP")


def _hidden_spikes(model, x):
    """Each hidden layer's spikes ``[T, N, F]``, run layer by layer on the model itself."""
    s, out = jnp.broadcast_to(jnp.asarray(x)[None], (T, *x.shape)), []
    for unit, lif in zip(model.units, model.lifs, strict=True):
        s = lif(unit(s))
        out.append(np.asarray(s))
    return out


@pytest.fixture(scope="module")
def cases():
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.FAMILIES, "mlp", TINY_MLP)
        for variant in ("bsnn", "fp"):
            kw = dict(variant=variant, timesteps=T, num_classes=CLASSES, input_shape=(INPUT,), recurrent=True)
            rng = np.random.default_rng(7)
            calibration = rng.normal(size=(16, INPUT)).astype(np.float32)
            x = 2 * rng.normal(size=(8, INPUT)).astype(np.float32)
            model = trained_like("mlp", kw, calibration, seed=3)
            graph = bnir.to_nir(model)
            logits = np.asarray(model(x))
            nir_logits, nir_spikes = run_graph(graph, x, T)
            out[variant] = dict(model=model, graph=graph, x=x, logits=logits, nir_logits=nir_logits, nir_spikes=nir_spikes)
    return out


@pytest.mark.parametrize("variant", ["bsnn", "fp"])
def test_recurrent_layer_is_a_lif_linear_cycle_holding_v(cases, variant):
    """Per hidden layer: LIF -> Linear -> LIF (snnTorch's RLeaky convention), the Linear reading and feeding
    only its LIF; its weight is V in NIR's (out, in) layout: sign(V) * mean|V| per output unit (AGMM Eq. 5)
    in bsnn, V's floats in fp."""
    c = cases[variant]
    g = c["graph"]
    assert [type(n).__name__ for n in g.nodes.values()] == [
        "Input",
        "Affine",
        "LIF",
        "Linear",
        "Affine",
        "LIF",
        "Linear",
        "Affine",
        "Output",
    ]
    for i, lif in enumerate(c["model"].lifs):
        name, rec = f"lifs.{i}", f"lifs.{i}.recurrent"
        assert [e for e in g.edges if rec in e] == [(name, rec), (rec, name)]
        v = np.asarray(lif.recurrent.kernel[...])  # [in, out], used as s @ V
        want = np.sign(v) * np.abs(v).mean(axis=0) if variant == "bsnn" else v
        np.testing.assert_allclose(g.nodes[rec].weight, want.T, rtol=1e-6)
        if variant == "bsnn":
            assert all(np.unique(np.abs(row)).size == 1 for row in g.nodes[rec].weight)  # +-gamma per output unit


@pytest.mark.parametrize("variant", ["bsnn", "fp"])
def test_interpreter_gives_the_models_spikes_and_logits(cases, variant):
    c = cases[variant]
    for i, want in enumerate(_hidden_spikes(c["model"], c["x"])):
        np.testing.assert_array_equal(c["nir_spikes"][f"lifs.{i}"], want)
        assert 0.05 < want.mean() < 0.95, "a layer that never (or always) fires would not test V"
    np.testing.assert_allclose(c["nir_logits"], c["logits"], atol=1e-4 * np.abs(c["logits"]).max())
    # V takes part: the same graph without the cycles computes other logits.
    g = c["graph"]
    open_graph = nir.NIRGraph(
        nodes={k: n for k, n in g.nodes.items() if not k.endswith("recurrent")},
        edges=[e for e in g.edges if "lifs.0.recurrent" not in e and "lifs.1.recurrent" not in e],
    )
    assert np.abs(run_graph(open_graph, c["x"], T)[0] - c["logits"]).max() > 1e-2 * np.abs(c["logits"]).max()


@pytest.mark.parametrize("variant", ["bsnn", "fp"])
def test_round_trip_through_a_file_gives_the_logits(cases, variant, tmp_path):
    c = cases[variant]
    nir.write(tmp_path / "r.nir", c["graph"])
    net = bnir_import.from_nir(nir.read(tmp_path / "r.nir"), timesteps=T).model
    got = np.asarray(nnx.jit(lambda m, x: m(x))(net, c["x"]))
    np.testing.assert_allclose(got, c["logits"], atol=1e-4 * np.abs(c["logits"]).max())
    # The cycles became the neurons' recurrent kernels; binary exactly in bsnn (+-gamma rows), float in fp.
    binary = variant == "bsnn"
    assert net.binary_nodes() == (["lifs.0", "units.1", "lifs.1"] if binary else [])
    for i in range(2):
        recurrent = net.node(f"lifs.{i}").lif.recurrent
        np.testing.assert_allclose(np.asarray(recurrent.weight(jnp.float32)).T, c["graph"].nodes[f"lifs.{i}.recurrent"].weight, rtol=1e-6)


def _recurrent_chain(synapse):
    """input -> Affine -> LIF with ``synapse`` as its recurrence (3 neurons, snnTorch's dt, input gains r dt/tau = 1, 2, 1)."""
    lif = nir.LIF(tau=np.full(3, 2e-4), r=np.array([2.0, 4.0, 2.0]), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "ff": nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, np.float32)),
        "lif": lif,
        "rec": synapse,
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("input", "ff"), ("ff", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_recurrent_import_by_hand_and_refusals():
    """tau_b = 0.5, v_th = 1 (snnTorch's dt = 1e-4), the neuron's input gain r dt / tau = (1, 2, 1) applying to V's
    current too: neuron 0 gets 1.2 at t=0 and fires; neuron 1 hears it one step later through V = 0.75 times
    its gain 2 (1.5 > 1: fires at t=1, not at t=0); neuron 2 hears neuron 1 through 0.75 times gain 1 and
    stays silent (0.75, then 0.375 + 0: the leak). Worked by hand. A recurrent Affine with a bias is refused, naming it."""
    v = np.zeros((3, 3), np.float32)
    v[1, 0] = v[2, 1] = 0.75  # NIR (out, in): neuron 1 hears neuron 0, neuron 2 hears neuron 1
    net = bnir_import.from_nir(_recurrent_chain(nir.Linear(weight=v)), timesteps=4, dt=1e-4).model
    spikes = np.asarray(net(np.array([[[1.2, 0.0, 0.0]], [[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]], np.float32)))
    np.testing.assert_array_equal(spikes[:, 0], [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]])
    biased = nir.Affine(weight=v, bias=np.ones(3, np.float32))
    with pytest.raises(bnir.NIRExportError, match="rec: the recurrent Affine has a nonzero bias"):
        bnir_import.from_nir(_recurrent_chain(biased), dt=1e-4)


def test_agmm_recurrent_mlp_is_still_refused():
    model = nnx.eval_shape(lambda: models.create("mlp", variant="agmm", timesteps=2, input_shape=(6,), num_classes=3, recurrent=True))
    with pytest.raises(bnir.NIRExportError, match="AGMM Eq. 11"):
        bnir.to_nir(model)


def test_imported_recurrent_net_runs_online_and_variants_choose_v(cases):
    """One time step per call (``nn.online``, as T-BSO trains; S[t-1] carried by the neuron) gives the scanned
    logits; ``variant="fp"`` keeps V's floats, ``variant="bsnn"`` binarizes an FP-SNN's V to sign * mean|V| per
    output unit (AGMM Eq. 5)."""
    c = cases["bsnn"]
    net = bnir_import.from_nir(c["graph"], timesteps=T).model
    view = bsnn_nn.modes.online(net, t=0)
    steps = np.concatenate([np.asarray(view(c["x"][None])) for _ in range(T)])
    np.testing.assert_allclose(steps, c["logits"], atol=1e-4 * np.abs(c["logits"]).max())

    v_fp = cases["fp"]["graph"].nodes["lifs.1.recurrent"].weight  # NIR (out, in)
    for variant, want in [("fp", v_fp), ("bsnn", np.sign(v_fp) * np.abs(v_fp).mean(axis=1, keepdims=True))]:
        recurrent = bnir_import.from_nir(cases["fp"]["graph"], timesteps=T, variant=variant).model.node("lifs.1").lif.recurrent
        assert recurrent.binary == (variant == "bsnn")
        np.testing.assert_allclose(np.asarray(recurrent.weight(jnp.float32)).T, want, rtol=1e-5)
