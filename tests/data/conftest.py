"""Fixtures for the data tests: no network, and writers of tiny datasets in their real on-disk formats."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from bsnn_jax.data import standin


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails loudly, so a code path that would download is caught here."""

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("a data test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def encode_image():
    """``encode_image(uint8 [H, W, C] array, "PNG" or "JPEG") -> bytes``, with Pillow."""
    return standin.encode_image


@pytest.fixture
def write_tfds():
    """``write_tfds(name, data_dir, {split: [example dict, ...]})``: a real, tiny, prepared tfds dataset
    (array_record) written without TensorFlow (``bsnn_jax.data.standin``)."""
    return standin.write_tfds


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
AEDAT4_DESCRIPTION = """<dv version="2.0">
    <node name="outInfo">
        <node name="0">
            <attr key="typeIdentifier" type="string">EVTS</attr>
            <node name="info">
                <attr key="sizeX" type="int">128</attr>
                <attr key="sizeY" type="int">128</attr>
            </node>
        </node>
    </node>
</dv>
"""


def _aedat4_ioheader() -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(512)
    description = builder.CreateString(AEDAT4_DESCRIPTION)
    builder.StartObject(3)  # table Ioheader {compression, file_data_position, description}
    builder.PrependUOffsetTRelativeSlot(2, description, 0)
    builder.FinishSizePrefixed(builder.EndObject(), b"IOHE")
    return bytes(builder.Output())


def _aedat4_event_packet(events: list[tuple[int, int, int, bool]]) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    # struct Event {t: int64; x: int16; y: int16; on: bool} -> 16 bytes, 8-aligned.
    builder.StartVector(16, len(events), 8)
    for t, x, y, on in reversed(events):
        builder.Prep(8, 16)
        builder.Pad(3)
        builder.PrependBool(on)
        builder.PrependInt16(y)
        builder.PrependInt16(x)
        builder.PrependInt64(t)
    elements = builder.EndVector()
    builder.StartObject(1)  # table EventPacket {elements: [Event]}
    builder.PrependUOffsetTRelativeSlot(0, elements, 0)
    builder.FinishSizePrefixed(builder.EndObject(), b"EVTS")
    payload = bytes(builder.Output())
    stream_id = 0
    return stream_id.to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


@pytest.fixture
def write_aedat4():
    """``write_aedat4(path, [(t, x, y, polarity), ...])``: an uncompressed AEDAT 4.0 event file
    (the format of tonic's CIFAR10-DVS release), with the events split over two packets."""

    def write(path: Path, events: list[tuple[int, int, int, bool]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        half = len(events) // 2
        packets = [p for p in (events[:half], events[half:]) if p]
        path.write_bytes(AEDAT4_MAGIC + _aedat4_ioheader() + b"".join(map(_aedat4_event_packet, packets)))

    return write


@pytest.fixture
def write_gesture_npy():
    """``write_gesture_npy(path, [(x, y, polarity, t_ms), ...])``: a recording of tonic's
    preprocessed DVS-Gesture release, an ``[N, 4]`` integer array."""

    def write(path: Path, events: list[tuple[int, int, int, int]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(events, np.int64).reshape(-1, 4))

    return write


class ScriptedRng:
    """Stands in for ``np.random.Generator`` with the draws a hand-worked example needs."""

    def __init__(self, *values):
        self.values = list(values)

    def _next(self):
        return self.values.pop(0)

    def integers(self, *args, size=None, **kwargs):
        return np.array([self._next() for _ in range(size)]) if size else self._next()

    def random(self):
        return self._next()

    def uniform(self, *args):
        return self._next()


@pytest.fixture
def scripted_rng():
    return ScriptedRng
