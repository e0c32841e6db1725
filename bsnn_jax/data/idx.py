"""Reader for the IDX format of (Fashion-)MNIST, plain or gzipped.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimension sizes, then the array in C order, big-endian. Fashion-MNIST's images are
``0x00000803`` (uint8, 3 dims: N, 28, 28) and its labels ``0x00000801`` (uint8, 1 dim: N).
Reference: http://yann.lecun.com/exdb/mnist/ (bottom of the page).
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

_GZIP_MAGIC = b"\x1f\x8b"

# Type byte -> big-endian dtype, as listed in the format's description.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """The file is not a well-formed IDX file (wrong magic number, truncated, trailing bytes)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (optionally gzip-compressed) into a native-endian numpy array.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      IdxFormatError: the header is invalid or the payload size does not match it, e.g. a
        truncated download.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise IdxFormatError(f"{path}: corrupt or truncated gzip data ({e})") from e
    return parse_idx(raw, name=str(path))


def parse_idx(raw: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Parses the bytes of an uncompressed IDX file; see :func:`read_idx`."""
    if len(raw) < 4:
        raise IdxFormatError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    zero, type_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or type_code not in IDX_DTYPES or ndim == 0:
        raise IdxFormatError(
            f"{name}: bad IDX magic number 0x{raw[:4].hex()} "
            "(expected 00 00, a type byte in {08,09,0B,0C,0D,0E}, and at least one dimension)"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IdxFormatError(f"{name}: truncated header ({len(raw)} of {header_size} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise IdxFormatError(f"{name}: {what}: header says shape {shape} of {dtype.name} = {expected} bytes, found {actual}")
    data = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def check_idx(array: np.ndarray, *, name: str, ndim: int, dtype: np.dtype) -> None:
    """Raises :class:`IdxFormatError` unless ``array`` has the rank and dtype a loader expects."""
    if array.ndim != ndim or array.dtype != dtype:
        raise IdxFormatError(f"{name}: expected a {ndim}-d {np.dtype(dtype).name} IDX array, got shape {array.shape} of {array.dtype.name}")
