"""Stand-in datasets in the real on-disk formats, for dry runs of a recipe and for tests.

``write_tfds`` leaves what ``tfds build`` would leave (array_record shards, feature encoding and
metadata by tfds itself) but from records you give, so a config's own input pipeline can run on a
machine without the real data and without TensorFlow.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np


def encode_image(image: np.ndarray, fmt: str = "PNG") -> bytes:
    """A uint8 ``[H, W, C]`` image (C = 1 or 3) as PNG or JPEG bytes, as tfds's Image feature stores it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def write_tfds(name: str, data_dir: str | Path, splits: dict[str, list[dict]]) -> None:
    """A tiny prepared tfds dataset ``name`` under ``data_dir`` with ``splits = {split: [example dict, ...]}``.

    Subclasses the registered builder only to replace its download-and-parse step with the given
    examples. Image features must be encoded bytes (:func:`encode_image`): encoding numpy arrays
    would need TensorFlow.
    """
    import tensorflow_datasets as tfds

    base = tfds.builder_cls(name)

    class Tiny(base, skip_registration=True):
        def _split_generators(self, dl_manager):
            return {split: ((f"{split}{i}", example) for i, example in enumerate(examples)) for split, examples in splits.items()}

    # With a dotted module name tfds would look the builder's code up as a package resource
    # (through importlib_resources, not a dependency); with an undotted one it skips that.
    Tiny.name, Tiny.__module__ = name, "standin"
    # A builder whose data is not prepared yet leaves an empty directory in the system's temporary
    # directory (tfds' DatasetInfo.initialize_from_bucket): give it one that is removed after.
    with tempfile.TemporaryDirectory() as scratch:
        system_tmp, tempfile.tempdir = tempfile.tempdir, scratch
        try:
            Tiny(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
        finally:
            tempfile.tempdir = system_tmp
