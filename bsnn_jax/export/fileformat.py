"""The ``.bsnn`` file: a fixed header, a JSON manifest, then the tensors' bytes.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic b"BSNNPACK"
    8       4     format version, uint32 (this module writes ``VERSION``, reads ``SUPPORTED_VERSIONS``)
    12      8     manifest length M in bytes, uint64
    20      8     payload length P in bytes, uint64
    28      32    sha256 of the manifest and the payload (bytes 60 .. 60 + M + P)
    60      M     manifest, UTF-8 JSON
    60 + M  P     payload: the tensors back to back, each at its manifest ``offset`` (from the payload start)

The manifest holds ``tensors``, a list of ``{name, shape, dtype, encoding, offset, nbytes}``:
``encoding`` is ``"sign_bits"`` (a binary kernel of ``shape``, ``ceil(prod(shape)/8)`` bytes in
the layout of ``export.bits``) or ``"raw"`` (a little-endian array of ``dtype``, ``float32`` or
``float16``), plus whatever the exporter describes (architecture, folded layers, ...).

A file whose length disagrees with the header is reported as truncated (or as having
trailing bytes), any flipped bit in the manifest or payload as a checksum mismatch, and a
version this code cannot read by the versions it can.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"BSNNPACK"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
_HEADER = struct.Struct("<8sIQQ32s")
HEADER_BYTES = _HEADER.size  # 60

SIGN_BITS, RAW = "sign_bits", "raw"


class ExportFormatError(ValueError):
    """A ``.bsnn`` file is truncated, corrupted, of another format version, or not one at all."""


def write(path: str | os.PathLike, manifest: dict[str, Any], tensors: list[tuple[str, str, tuple[int, ...], np.ndarray]]) -> int:
    """Writes ``manifest`` (plus a ``tensors`` table) and the tensors to ``path``; returns the file size.

    Args:
      tensors: ``(name, encoding, logical shape, data)``; ``data`` is the packed ``uint8`` bits
        for ``sign_bits``, or the array itself (its dtype is stored) for ``raw``.
    """
    table, chunks, offset = [], [], 0
    for name, encoding, shape, data in tensors:
        data = np.ascontiguousarray(data)
        raw = data.astype(data.dtype.newbyteorder("<")).tobytes()
        dtype = "uint1" if encoding == SIGN_BITS else data.dtype.name
        table.append({"name": name, "shape": list(shape), "dtype": dtype, "encoding": encoding, "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    meta = json.dumps({**manifest, "tensors": table}, separators=(",", ":")).encode()
    payload = b"".join(chunks)
    digest = hashlib.sha256(meta + payload).digest()
    blob = _HEADER.pack(MAGIC, VERSION, len(meta), len(payload), digest) + meta + payload
    Path(path).write_bytes(blob)
    return len(blob)


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads and verifies a file written by ``write``: ``(manifest, {name: data})``.

    ``data`` is the packed ``uint8`` bits for a ``sign_bits`` tensor, the array for ``raw``.

    Raises:
      ExportFormatError: not a ``.bsnn`` file, unsupported version, truncated, or checksum mismatch.
    """
    path = Path(path)
    blob = path.read_bytes()
    if len(blob) < HEADER_BYTES:
        raise ExportFormatError(
            f"{path}: {len(blob)} bytes, shorter than the {HEADER_BYTES}-byte header: the file is truncated or not a bsnn export"
        )
    magic, version, meta_len, payload_len, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ExportFormatError(f"{path}: not a bsnn export file (starts with {magic!r}, expected {MAGIC!r}); write one with bsnn export")
    if version not in SUPPORTED_VERSIONS:
        raise ExportFormatError(
            f"{path}: format version {version}, but this bsnn_jax reads versions {list(SUPPORTED_VERSIONS)}; "
            "re-export the model with this bsnn_jax (bsnn export) or use the bsnn_jax that wrote it"
        )
    expected = HEADER_BYTES + meta_len + payload_len
    if len(blob) != expected:
        problem = "truncated" if len(blob) < expected else "followed by extra bytes"
        raise ExportFormatError(f"{path}: {len(blob)} bytes but its header announces {expected}: the file is {problem}; export it again")
    body = blob[HEADER_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise ExportFormatError(f"{path}: checksum mismatch (sha256 of manifest and payload): the file is corrupted; export it again")
    manifest = json.loads(body[:meta_len])
    payload = memoryview(body)[meta_len:]
    arrays = {}
    for t in manifest["tensors"]:
        dtype = np.uint8 if t["encoding"] == SIGN_BITS else np.dtype(t["dtype"]).newbyteorder("<")
        count = math.prod(t["shape"])
        needed = -(-count // 8) if t["encoding"] == SIGN_BITS else count * dtype.itemsize
        if needed != t["nbytes"]:
            raise ExportFormatError(
                f"{path}: tensor {t['name']} declares shape {t['shape']} ({needed} bytes as {t['encoding']}) but holds "
                f"{t['nbytes']} bytes: the file was written wrongly; export it again"
            )
        data = np.frombuffer(payload[t["offset"] : t["offset"] + t["nbytes"]], dtype=dtype)
        arrays[t["name"]] = data if t["encoding"] == SIGN_BITS else data.reshape(t["shape"])
    return manifest, arrays
