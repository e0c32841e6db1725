"""``.bsnn`` of a recurrent MLP: V stored as sign bits plus its per-unit gamma, the file computes the model.

The recurrent V (``lifs.<i>.recurrent``, ``nn.RecurrentLIF``) is the one binary kernel no BN
follows, so ``export.packed.pack_synapse`` packs it in place instead of folding it into a unit.
The checks here read the file with the test's own reader (``conftest.parse_bsnn``) and decode
its bits with numpy, independently of ``export.bits``.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from conftest import parse_bsnn
from flax import nnx

from bsnn_jax import export, models
from bsnn_jax import nn as bsnn_nn

INPUT, HIDDEN, CLASSES = 6, (256, 256, 256), 4  # the registry's mlp widths
DESCRIPTION = dict(name="mlp", variant="bsnn", num_classes=CLASSES, input_shape=(INPUT,), timesteps=3, recurrent=True)


def _model(variant="bsnn"):
    model = models.create(**{**DESCRIPTION, "variant": variant}, rngs=0)
    model.eval()
    return model


@pytest.fixture(scope="module")
def x():
    # Large enough that spikes reach the classifier at initialization (with N(0, 1) every logit is 0).
    return 10 * np.asarray(random_inputs.normal(1, (5, INPUT)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, x):
    model = _model()
    path = tmp_path_factory.mktemp("rec") / "r.bsnn"
    return dict(model=model, path=path, result=export.save(model, DESCRIPTION, path), want=np.asarray(model(x)).mean(0))


def test_recurrent_mlp_file_computes_the_model(exported, x):
    np.testing.assert_allclose(export.load(exported["path"]).logits(x), exported["want"], atol=1e-5)
    no_v = nnx.clone(exported["model"])
    for lif in no_v.lifs:
        lif.recurrent.kernel[...] = jnp.zeros_like(lif.recurrent.kernel[...])
    assert np.abs(np.asarray(no_v(x)).mean(0) - exported["want"]).max() > 1e-3  # V takes part in these logits


def test_recurrent_kernel_is_stored_as_sign_bits_and_gamma(exported):
    f = parse_bsnn(exported["path"])
    for i, lif in enumerate(exported["model"].lifs):
        v = np.asarray(lif.recurrent.kernel[...])
        n = v.shape[0]
        entry = f.tensor(f"lifs.{i}.recurrent.kernel")
        assert (entry["encoding"], entry["shape"], entry["nbytes"]) == ("sign_bits", [n, n], -(-n * n // 8))
        # The documented layout: output unit major, bit 1 = +1, least significant bit first.
        bits = np.unpackbits(np.frombuffer(f.tensor_data(entry["name"]), np.uint8), bitorder="little")[: n * n]
        np.testing.assert_array_equal(bits.reshape(n, n).T, v >= 0)
        np.testing.assert_allclose(f.raw_array(f"lifs.{i}.recurrent.scale"), np.abs(v).mean(axis=0), rtol=1e-6)


def test_payload_is_one_bit_per_binary_weight_plus_float_vectors(exported):
    """Hand count: 1 bit per V and binary dense weight (bytes padded per tensor), 4 bytes per float."""
    bits = lambda n: -(-n // 8)  # noqa: E731
    dense = 4 * INPUT * HIDDEN[0] + sum(bits(a * b) for a, b in zip(HIDDEN[:-1], HIDDEN[1:], strict=True))  # the first one float
    folded = sum(4 * 2 * h for h in HIDDEN)  # scale + shift per unit
    recurrent = sum(bits(h * h) + 4 * h for h in HIDDEN)  # sign bits + gamma per layer
    classifier = 4 * (HIDDEN[-1] * CLASSES + CLASSES)
    result = exported["result"]
    assert result["payload_bytes"] == dense + folded + recurrent + classifier == parse_bsnn(exported["path"]).payload_len
    # The size report (metrics.model_size) counts 1 bit per weight and 2 BN floats per unit, as the
    # file does, but leaves gamma out as folded into BN: V has no BN, so the file adds V's gammas.
    assert result["payload_bytes"] == result["report_bytes"] + 4 * sum(HIDDEN)


def test_latent_free_recurrent_model_round_trips(tmp_path, x):
    """A T-BSO-trained model: every binary kernel +-1, used as stored (``nn.latent_free``), gamma 1."""
    model = _model()
    for layer in [m for _, m in nnx.iter_modules(model) if isinstance(m, bsnn_nn.SynapticLayer) and m.binary]:
        layer.kernel[...] = jnp.where(layer.kernel[...] >= 0, 1.0, -1.0)
    bso = bsnn_nn.latent_free(model)
    export.save(bso, DESCRIPTION, tmp_path / "bso.bsnn")
    f = parse_bsnn(tmp_path / "bso.bsnn")
    for i in range(len(HIDDEN)):
        np.testing.assert_array_equal(f.raw_array(f"lifs.{i}.recurrent.scale"), 1.0)
    np.testing.assert_allclose(export.load(tmp_path / "bso.bsnn").logits(x), np.asarray(bso(x)).mean(0), atol=1e-5)


def test_fp_variant_keeps_float_recurrent_kernels(tmp_path, x):
    model = _model("fp")
    export.save(model, {**DESCRIPTION, "variant": "fp"}, tmp_path / "fp.bsnn")
    f = parse_bsnn(tmp_path / "fp.bsnn")
    np.testing.assert_array_equal(f.raw_array("lifs.1.recurrent.kernel"), np.asarray(model.lifs[1].recurrent.kernel[...]))
    assert not any(t["name"].endswith("recurrent.scale") for t in f.manifest["tensors"])
    np.testing.assert_allclose(export.load(tmp_path / "fp.bsnn").logits(x), np.asarray(model(x)).mean(0), atol=1e-5)
