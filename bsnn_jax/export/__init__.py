"""Deployment: a one-file, bit-packed export of a trained binary SNN and inference from it.

    info = export.export_run("runs/demo", "demo.bsnn")       # or export.save(model, description, path)
    packed = export.load("demo.bsnn")                           # verifies the checksum, rebuilds the net
    classes = packed.predict(images)                            # images as the dataset stores them

Modules: ``bits`` (the 1-bit kernel layout), ``fileformat`` (header, manifest, checksum),
``packed`` (BN folding and the packed network), ``api`` (save, load, ``PackedModel``),
``nir`` (``to_nir``: the network as a NIR graph), ``nir_import`` (``from_nir``: any feed-forward
NIR graph, residual sums included, and LIF <-> Linear self-recurrence), ``nir_graph`` (``GraphNet``, the trainable module it builds),
``nir_interop`` (snnTorch reads our export: ``python -m bsnn_jax.export.nir_interop``).

    graph = export.to_nir(restored_or_model)                    # nir.write("model.nir", graph)
    imported = export.from_nir(nir.read("model.nir"))           # .model (GraphNet), .normalization
"""

from bsnn_jax.export.api import ExportError, PackedModel, agreement, batched_logits, export_run, load, mean_logits_fn, save
from bsnn_jax.export.bits import pack_signs, packed_nbytes, unpack_signs
from bsnn_jax.export.fileformat import HEADER_BYTES, SUPPORTED_VERSIONS, VERSION, ExportFormatError
from bsnn_jax.export.nir import NIRExportError, export_nir_run, to_nir
from bsnn_jax.export.nir_graph import GraphNet
from bsnn_jax.export.nir_import import ImportedNIR, from_nir

__all__ = [
    "HEADER_BYTES",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "ExportError",
    "ExportFormatError",
    "GraphNet",
    "ImportedNIR",
    "NIRExportError",
    "PackedModel",
    "agreement",
    "batched_logits",
    "export_nir_run",
    "export_run",
    "from_nir",
    "load",
    "mean_logits_fn",
    "pack_signs",
    "packed_nbytes",
    "save",
    "to_nir",
    "unpack_signs",
]
