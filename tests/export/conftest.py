"""The ``.bsnn`` layout read and written by hand from the table in ``export/fileformat.py``'s docstring.

Nothing here calls ``fileformat``: the tests compare the library's files and reader with this
second implementation of the documented layout, so a change on one side that the other does
not share (an offset, a width, what the checksum covers) shows up as a failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from pathlib import Path

import numpy as np

MAGIC = b"BSNNPACK"
# offset 0: magic (8 bytes), 8: version (uint32), 12: manifest length M (uint64),
# 20: payload length P (uint64), 28: sha256 of the M + P bytes that follow (32 bytes).
FIXED_HEADER_BYTES = 8 + 4 + 8 + 8 + 32


@dataclasses.dataclass
class BsnnFile:
    magic: bytes
    version: int
    manifest_len: int
    payload_len: int
    digest: bytes
    manifest: dict
    payload: bytes
    file_bytes: int
    body_sha256: bytes  # sha256 of everything after the fixed header, as found in the file

    @property
    def header_bytes(self) -> int:
        """Everything that is not a tensor: the fixed header and the manifest."""
        return FIXED_HEADER_BYTES + self.manifest_len

    def tensor(self, name: str) -> dict:
        (entry,) = [t for t in self.manifest["tensors"] if t["name"] == name]
        return entry

    def tensor_data(self, name: str) -> bytes:
        t = self.tensor(name)
        return self.payload[t["offset"] : t["offset"] + t["nbytes"]]

    def raw_array(self, name: str) -> np.ndarray:
        """A ``raw`` tensor decoded as the documented little-endian array of its ``dtype``."""
        t = self.tensor(name)
        return np.frombuffer(self.tensor_data(name), np.dtype(t["dtype"]).newbyteorder("<")).reshape(t["shape"])


def parse_bsnn(path: str | Path) -> BsnnFile:
    blob = Path(path).read_bytes()
    (version,) = struct.unpack_from("<I", blob, 8)
    manifest_len, payload_len = struct.unpack_from("<QQ", blob, 12)
    start = FIXED_HEADER_BYTES
    return BsnnFile(
        magic=blob[:8],
        version=version,
        manifest_len=manifest_len,
        payload_len=payload_len,
        digest=blob[28:60],
        manifest=json.loads(blob[start : start + manifest_len].decode("utf-8")),
        payload=blob[start + manifest_len : start + manifest_len + payload_len],
        file_bytes=len(blob),
        body_sha256=hashlib.sha256(blob[start:]).digest(),
    )


def write_bsnn(path: str | Path, manifest: dict, payload: bytes, *, version: int = 1) -> Path:
    """A file in the documented layout with a correct checksum, so only what the caller edited is wrong."""
    meta = json.dumps(manifest).encode("utf-8")
    header = MAGIC + struct.pack("<IQQ", version, len(meta), len(payload)) + hashlib.sha256(meta + payload).digest()
    assert len(header) == FIXED_HEADER_BYTES
    Path(path).write_bytes(header + meta + payload)
    return Path(path)
