"""The 1-bit layout, the file sizes against ``bsnn report``, and corrupted files (no training needed)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bsnn_jax import export, models
from bsnn_jax.export import fileformat
from bsnn_jax.export.bits import pack_signs_jax, unpack_signs_jax
from bsnn_jax.metrics import model_size


# ------------------------------------------------------------------ bit layout


@pytest.mark.parametrize("shape", [(3, 3, 5, 7), (3, 3, 32, 64), (10, 3), (1, 1, 1, 1)])
def test_pack_unpack_round_trip_is_exact(shape):
    w = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    w.flat[0] = 0.0  # sign(0) = +1, as ops.sign_ste
    signs = np.where(w >= 0, 1, -1).astype(np.int8)
    bits = export.pack_signs(w)
    assert bits.dtype == np.uint8 and bits.shape == (math.ceil(w.size / 8),) == (export.packed_nbytes(shape),)
    np.testing.assert_array_equal(export.unpack_signs(bits, shape), signs)
    np.testing.assert_array_equal(np.asarray(pack_signs_jax(jnp.asarray(w))), bits)
    np.testing.assert_array_equal(np.asarray(unpack_signs_jax(jnp.asarray(bits), shape)), signs.astype(np.float32))


def test_layout_is_output_channel_major_little_endian():
    # Independent of np.packbits: weight (i, o) of channel o, flattened index i, is bit
    # o * n + i of the stream, bit k of byte k // 8 at value 2^(k % 8); the pad bits are 0.
    w = np.random.default_rng(1).normal(size=(2, 2, 3, 5))
    n = 2 * 2 * 3
    expected = np.zeros(math.ceil(w.size / 8), np.uint8)
    for o in range(5):
        for i, value in enumerate(w[..., o].reshape(-1)):
            k = o * n + i
            expected[k // 8] |= (value >= 0) << (k % 8)
    np.testing.assert_array_equal(export.pack_signs(w), expected)


def test_unpack_rejects_a_wrong_byte_count():
    with pytest.raises(ValueError, match="packs into 2 bytes"):
        export.unpack_signs(np.zeros(3, np.uint8), (3, 3))


# ------------------------------------------------------------------ sizes


def _model(name, **kw):
    """An untrained model with all-ones parameters and statistics: sizes need no training or initialization."""
    abstract = nnx.eval_shape(lambda: models.create(name, **kw))
    graphdef, state = nnx.split(abstract)
    return nnx.merge(graphdef, jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), state))


SIZE_CASES = {
    "small_cnn": dict(variant="agmm", timesteps=2, num_classes=10, input_shape=(28, 28, 1)),
    "resnet19": dict(variant="agmm", timesteps=2, num_classes=100, input_shape=(32, 32, 3)),
}


@pytest.mark.parametrize("name", sorted(SIZE_CASES))
def test_file_size_is_the_report_size_plus_the_header(name, tmp_path):
    kw = SIZE_CASES[name]
    model = _model(name, **kw)
    description = {"name": name, **kw, "input_shape": list(kw["input_shape"]), "neuron": {}}
    info = export.save(model, description, tmp_path / "m.bsnn")
    report = model_size(model).total_bytes
    file_bytes = (tmp_path / "m.bsnn").stat().st_size
    assert file_bytes == info["file_bytes"]
    assert abs(file_bytes - (report + info["header_bytes"])) <= 0.05 * report
    # stronger: binary kernels at exactly 1 bit, 2 floats per channel for BN, nothing else
    assert info["payload_bytes"] == report
    assert info["header_bytes"] < 0.01 * report
    info16 = export.save(model, description, tmp_path / "m16.bsnn", fp16=True)
    assert info16["payload_bytes"] < info["payload_bytes"]
    if name == "resnet19":  # the figure of the issue: AGMM's ResNet-19 CIFAR-100 BSNN, 2.46 MB
        assert round(file_bytes / 1e6, 2) == 2.47 and round(report / 1e6, 2) == 2.46


# ------------------------------------------------------------------ damaged files


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    kw = SIZE_CASES["small_cnn"]
    path = tmp_path_factory.mktemp("export") / "small.bsnn"
    description = {"name": "small_cnn", **kw, "input_shape": list(kw["input_shape"]), "neuron": {}}
    export.save(_model("small_cnn", **kw), description, path)
    return path, description


def _damaged(path, tmp_path, edit):
    blob = bytearray(path.read_bytes())
    blob = edit(blob)
    out = tmp_path / "damaged.bsnn"
    out.write_bytes(bytes(blob))
    return out


def test_intact_file_loads(exported):
    path, description = exported
    packed = export.load(path)
    assert packed.manifest["model"] == description
    assert packed.manifest["folded_units"] == ["units.0", "units.1", "units.2"]


def test_flipped_payload_byte_is_a_checksum_error_naming_the_file(exported, tmp_path):
    def flip(blob):
        blob[-1000] ^= 0x10
        return blob

    damaged = _damaged(exported[0], tmp_path, flip)
    with pytest.raises(export.ExportFormatError, match="checksum mismatch") as e:
        export.load(damaged)
    assert str(damaged) in str(e.value)


def test_truncated_file_is_reported_as_truncated(exported, tmp_path):
    for cut in (100, 20):  # inside the payload, inside the header
        with pytest.raises(export.ExportFormatError, match="truncated"):
            export.load(_damaged(exported[0], tmp_path, lambda blob: blob[:-cut] if cut == 100 else blob[:cut]))


def test_other_version_names_the_supported_ones(exported, tmp_path):
    def bump(blob):
        blob[8:12] = (fileformat.VERSION + 1).to_bytes(4, "little")
        return blob

    with pytest.raises(export.ExportFormatError, match=r"format version 2, but this bsnn_jax reads versions \[1\]"):
        export.load(_damaged(exported[0], tmp_path, bump))


def test_not_an_export_file(tmp_path):
    path = tmp_path / "x.bsnn"
    path.write_bytes(b"\x89PNG" + bytes(100))
    with pytest.raises(export.ExportFormatError, match="not a bsnn export"):
        export.load(path)


def test_existing_file_is_not_overwritten_without_force(exported):
    path, description = exported
    before = path.read_bytes()
    with pytest.raises(export.ExportError, match="already exists.*--force"):
        export.save(_model("small_cnn", **SIZE_CASES["small_cnn"]), description, path)
    assert path.read_bytes() == before


def test_description_of_another_architecture_is_refused(exported, tmp_path):
    _, description = exported
    with pytest.raises(export.ExportError, match="does not have the architecture"):
        export.save(_model("small_cnn", **SIZE_CASES["small_cnn"]), {**description, "num_classes": 7}, tmp_path / "m.bsnn")
