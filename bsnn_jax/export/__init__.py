"""Deployment: a one-file, bit-packed export of a trained binary SNN and inference from it.

    info = export.export_run("runs/demo", "demo.bsnn")       # or export.save(model, description, path)
    packed = export.load("demo.bsnn")                           # verifies the checksum, rebuilds the net
    classes = packed.predict(images)                            # images as the dataset stores them

Modules: ``bits`` (the 1-bit kernel layout), ``fileformat`` (header, manifest, checksum),
``packed`` (BN folding and the packed network), ``api`` (save, load, ``PackedModel``).
"""

from bsnn_jax.export.api import ExportError, PackedModel, agreement, batched_logits, export_run, load, mean_logits_fn, save
from bsnn_jax.export.bits import pack_signs, packed_nbytes, unpack_signs
from bsnn_jax.export.fileformat import HEADER_BYTES, SUPPORTED_VERSIONS, VERSION, ExportFormatError

__all__ = [
    "HEADER_BYTES",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "ExportError",
    "ExportFormatError",
    "PackedModel",
    "agreement",
    "batched_logits",
    "export_run",
    "load",
    "mean_logits_fn",
    "pack_signs",
    "packed_nbytes",
    "save",
    "unpack_signs",
]
