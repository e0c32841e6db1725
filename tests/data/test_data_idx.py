"""IDX reader against hand-built files."""

import gzip
import struct

import numpy as np
import pytest

from bsnn_jax.data.idx import IdxFormatError, check_idx, parse_idx, read_idx

# A 2x2x3 uint8 array, written out byte by byte as the format describes it.
UBYTE_3D = (
    bytes([0, 0, 0x08, 3])  # magic: ubyte, 3 dimensions
    + struct.pack(">III", 2, 2, 3)  # sizes, big-endian
    + bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 255])
)


def test_reads_hand_built_ubyte_file(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(UBYTE_3D)
    array = read_idx(path)
    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 255]]])


def test_reads_gzipped_file(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(UBYTE_3D))
    assert read_idx(path).shape == (2, 2, 3)


def test_big_endian_int32_and_float32():
    ints = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + struct.pack(">iii", -2, 70000, 1)
    np.testing.assert_array_equal(parse_idx(ints), [-2, 70000, 1])
    assert parse_idx(ints).dtype == np.dtype("int32")  # native byte order for numpy/JAX
    floats = bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2) + struct.pack(">ff", 0.5, -1.25)
    np.testing.assert_array_equal(parse_idx(floats), np.array([0.5, -1.25], np.float32))


@pytest.mark.parametrize(
    "raw, message",
    [
        (bytes([0, 1, 0x08, 1]) + struct.pack(">I", 1) + b"\x00", "bad IDX magic"),
        (bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\x00", "bad IDX magic"),
        (bytes([0, 0, 0x08, 0]), "bad IDX magic"),
        (bytes([0, 0, 0x08]), "too short"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 2), "truncated header"),
        (UBYTE_3D[:-1], "truncated: header says shape (2, 2, 3)"),
        (UBYTE_3D + b"\x00", "trailing bytes"),
    ],
)
def test_malformed_files_are_clear_errors(raw, message):
    with pytest.raises(IdxFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_idx(raw, name="f")


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(UBYTE_3D)[:-10])
    with pytest.raises(IdxFormatError, match=f"{path}: corrupt or truncated gzip"):
        read_idx(path)


def test_check_idx_rejects_wrong_rank_or_dtype():
    check_idx(np.zeros((2, 3), np.uint8), name="x", ndim=2, dtype=np.uint8)
    with pytest.raises(IdxFormatError, match="expected a 3-d uint8"):
        check_idx(np.zeros((2, 3), np.uint8), name="x", ndim=3, dtype=np.uint8)
