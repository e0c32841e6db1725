"""The 1-bit layout, the file sizes against ``bsnn report``, and damaged files (no training needed).

The files are parsed and re-written by tests/export/conftest.py, from the documented layout.
"""

import copy
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from export.conftest import (  # tests/ is on sys.path (rootdir conftest)
    FIXED_HEADER_BYTES,
    parse_bsnn,
    write_bsnn,
)
from flax import nnx

from bsnn_jax import export, models
from bsnn_jax.export import fileformat
from bsnn_jax.export.bits import pack_signs_jax, unpack_signs_jax
from bsnn_jax.metrics import model_size
from bsnn_jax.models import ConvUnit

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


def _stored_bytes(model, fp16=False):
    """What the tensors of ``model``'s file must take, counted from its layers by the README's rules:
    a binary kernel at 1 bit per weight (whole bytes per tensor), a full-precision kernel at 4 bytes
    (2 with fp16), two float32 per output channel for the folded BN and gamma, AGMM's alpha and
    the classifier's bias in float32."""
    total = 0
    for _, m in nnx.iter_modules(model):
        if isinstance(m, ConvUnit):
            shape = m.conv.kernel.shape
            total += math.ceil(math.prod(shape) / 8) if m.conv.binary else math.prod(shape) * (2 if fp16 else 4)
            total += 2 * 4 * shape[-1]
            if m.agmm is not None:
                total += 4 * m.agmm.alpha.shape[0]
    assert not model.fc.binary
    return total + math.prod(model.fc.kernel.shape) * (2 if fp16 else 4) + 4 * model.fc.bias.shape[0]


@pytest.mark.parametrize("name", sorted(SIZE_CASES))
def test_file_size_is_the_report_size_plus_the_header(name, tmp_path):
    """The header parsed by hand (conftest.parse_bsnn: fixed fields, then the manifest) and the
    tensor bytes counted from the layers (``_stored_bytes``): file = report + that header, exactly."""
    kw = SIZE_CASES[name]
    model = _model(name, **kw)
    description = {"name": name, **kw, "input_shape": list(kw["input_shape"]), "neuron": {}}
    info = export.save(model, description, tmp_path / "m.bsnn")
    f = parse_bsnn(tmp_path / "m.bsnn")
    assert f.magic == b"BSNNPACK" and f.version == 1
    # The header's two lengths account for every byte: no padding, nothing after the payload.
    assert f.file_bytes == FIXED_HEADER_BYTES + f.manifest_len + f.payload_len
    assert f.digest == f.body_sha256
    table = sorted(f.manifest["tensors"], key=lambda t: t["offset"])
    assert [t["offset"] for t in table] == list(np.cumsum([0] + [t["nbytes"] for t in table[:-1]]))
    assert sum(t["nbytes"] for t in table) == f.payload_len

    report = model_size(model).total_bytes
    assert report == _stored_bytes(model)  # bsnn report counts what the file has to store
    assert f.payload_len == _stored_bytes(model)
    assert f.file_bytes == report + f.header_bytes
    assert f.header_bytes < 0.01 * report
    assert (info["file_bytes"], info["header_bytes"], info["payload_bytes"]) == (f.file_bytes, f.header_bytes, f.payload_len)

    export.save(model, description, tmp_path / "m16.bsnn", fp16=True)
    f16 = parse_bsnn(tmp_path / "m16.bsnn")
    assert f16.payload_len == _stored_bytes(model, fp16=True) < f.payload_len
    assert f16.file_bytes == f16.payload_len + f16.header_bytes
    if name == "resnet19":  # the figure of the issue: AGMM's ResNet-19 CIFAR-100 BSNN, 2.46 MB
        assert round(f.file_bytes / 1e6, 2) == 2.47 and round(report / 1e6, 2) == 2.46


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
    for cut in (lambda blob: blob[:-100], lambda blob: blob[:20]):  # inside the payload, inside the header
        with pytest.raises(export.ExportFormatError, match="truncated"):
            export.load(_damaged(exported[0], tmp_path, cut))


def test_other_version_names_the_supported_ones(exported, tmp_path):
    def bump(blob):
        blob[8:12] = (fileformat.VERSION + 1).to_bytes(4, "little")
        return blob

    with pytest.raises(export.ExportFormatError, match=r"format version 2, but this bsnn_jax reads versions \[1\]"):
        export.load(_damaged(exported[0], tmp_path, bump))


def _rewritten(path, out, edit_table):
    """``path`` with its tensor table edited, written back with a valid checksum (conftest.write_bsnn),
    so the loader has to notice the edit itself rather than through the sha256."""
    f = parse_bsnn(path)
    table = copy.deepcopy(f.manifest["tensors"])
    edit_table(table)
    return write_bsnn(out, {**f.manifest, "tensors": table}, f.payload)


def _entry(table, name):
    (entry,) = [t for t in table if t["name"] == name]
    return entry


def test_hand_rewritten_file_loads_unchanged(exported, tmp_path):
    # The helper the damaged-table tests rely on: with no edit its output is a valid file.
    packed = export.load(_rewritten(exported[0], tmp_path / "same.bsnn", lambda table: None))
    assert packed.manifest["model"] == exported[1]


def test_trailing_bytes_are_an_error_naming_the_file(exported, tmp_path):
    damaged = _damaged(exported[0], tmp_path, lambda blob: blob + b"\x00" * 3)
    with pytest.raises(export.ExportFormatError, match="header announces .*followed by extra bytes") as e:
        export.load(damaged)
    assert str(damaged) in str(e.value)


def test_missing_tensor_is_named(exported, tmp_path):
    damaged = _rewritten(exported[0], tmp_path / "d.bsnn", lambda table: table.remove(_entry(table, "units.1.shift")))
    needs = r"tensor units\.1\.shift is missing, the architecture in its manifest needs \(64,\)"
    with pytest.raises(export.ExportFormatError, match=needs):
        export.load(damaged)


def test_wrong_shape_float_tensor_is_named(exported, tmp_path):
    # Same 40 bytes, so the file itself is consistent; only the architecture disagrees.
    damaged = _rewritten(exported[0], tmp_path / "d.bsnn", lambda table: _entry(table, "fc.bias").update(shape=[2, 5]))
    needs = r"tensor fc\.bias is shape \(2, 5\), the architecture in its manifest needs \(10,\)"
    with pytest.raises(export.ExportFormatError, match=needs):
        export.load(damaged)


def test_short_sign_bits_tensor_is_named(exported, tmp_path):
    def drop_a_byte(table):
        _entry(table, "units.2.kernel").update(nbytes=9216 - 1)  # 3*3*64*128 bits = 9216 bytes

    needs = r"tensor units\.2\.kernel declares shape \[3, 3, 64, 128\] \(9216 bytes as sign_bits\) but holds 9215 bytes"
    with pytest.raises(export.ExportFormatError, match=needs):
        export.load(_rewritten(exported[0], tmp_path / "d.bsnn", drop_a_byte))


def test_sign_bits_tensor_of_another_kernel_shape_is_named(exported, tmp_path):
    # Same number of bits, so only the declared logical shape can tell.
    transposed = [3, 3, 64, 32]
    damaged = _rewritten(exported[0], tmp_path / "d.bsnn", lambda table: _entry(table, "units.1.kernel").update(shape=transposed))
    with pytest.raises(export.ExportFormatError, match=r"tensor units\.1\.kernel"):
        export.load(damaged)


def test_float_tensor_whose_shape_disagrees_with_its_bytes_is_named(exported, tmp_path):
    # 12 float32 declared over 40 stored bytes.
    damaged = _rewritten(exported[0], tmp_path / "d.bsnn", lambda table: _entry(table, "fc.bias").update(shape=[12]))
    with pytest.raises(export.ExportFormatError, match=r"fc\.bias"):
        export.load(damaged)


def test_tensor_outside_the_architecture_is_named(exported, tmp_path):
    def add(table):
        table.append({**_entry(table, "units.0.scale"), "name": "units.3.scale"})

    with pytest.raises(export.ExportFormatError, match=r"tensors \['units\.3\.scale'\] do not belong to the architecture"):
        export.load(_rewritten(exported[0], tmp_path / "d.bsnn", add))


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
