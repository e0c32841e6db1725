"""``save`` / ``export_run`` write a ``.bsnn`` file; ``load`` rebuilds a runnable packed model.

What is stored (manifest fields beside the tensor table of ``export.fileformat``):

* ``model``: the ``models.create`` keyword arguments (name, variant, timesteps, num_classes,
  input_shape, neuron): ``load`` rebuilds the architecture from them, no training config needed.
* ``folded_units``: the units (2-D conv, 1-D conv, dense) whose BN (and gamma) were folded into
  ``scale``/``shift`` (``export.packed``): all of them in every family, ``mlp`` and ``conv1d`` included.
* tensors, named by their path in the packed network: ``<unit>.kernel`` as ``sign_bits`` for a
  binary layer, float for a full-precision one; ``<unit>.scale``, ``<unit>.shift``,
  ``<unit>.agmm.alpha`` and the classifier ``fc.kernel``, ``fc.bias``. A binary layer outside
  any unit (the recurrent V of a recurrent ``mlp``, ``lifs.<i>.recurrent``) is stored the same
  way: ``<layer>.kernel`` as ``sign_bits`` and its gamma (mean |V| per output unit) as float32
  ``<layer>.scale``. Floats are float32;
  with ``fp16=True`` the full-precision kernels (``nnx.Param`` of ndim >= 2, where the bytes
  are) are float16, per-channel vectors stay float32. ``load`` computes in float32.
* ``normalization`` (``{scale, mean, std}`` of ``data.Normalization``, or null): what turns the
  dataset's stored images into model input; ``PackedModel.predict`` applies it.
* ``report_bytes``: the size ``bsnn report`` gives (``metrics.model_size``), for comparison.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bsnn_jax import models
from bsnn_jax.data.base import Normalization
from bsnn_jax.export import fileformat
from bsnn_jax.export.packed import PackedConvUnit, PackedSynapse, SignBits, to_packed
from bsnn_jax.metrics import model_size
from bsnn_jax.ops import compiler

BIT_LAYOUT = (
    "sign_bits: kernel transposed to [C_out, ...] (output channel major), flattened row-major, "
    "bit 1 = +1 (w >= 0), bit 0 = -1, np.packbits bitorder=little, last byte zero-padded"
)


class ExportError(ValueError):
    """A model cannot be exported as asked (target exists, model and description disagree)."""


def _skeleton(description: dict[str, Any]) -> nnx.Module:
    """The packed network of ``description``, abstract (shapes only, nothing computed)."""
    spec = {**description, "input_shape": tuple(description["input_shape"])}
    name = spec.pop("name")
    return nnx.eval_shape(lambda: to_packed(models.create(name, **spec))[0])


def _path(path: tuple) -> str:
    return ".".join(map(str, path))


def _tensors(packed: nnx.Module, fp16: bool) -> list[tuple[str, str, tuple[int, ...], np.ndarray]]:
    """The file's tensor list: ``(name, encoding, logical shape, data)`` per variable of ``packed``."""
    kernel_shapes = _binary_kernel_shapes(packed)
    out = []
    for path, var in nnx.to_flat_state(nnx.state(packed)):
        name, data = _path(path), np.asarray(var[...])
        if isinstance(var, SignBits):
            out.append((name, fileformat.SIGN_BITS, kernel_shapes[name], data))
            continue
        half = fp16 and isinstance(var, nnx.Param) and data.ndim >= 2
        out.append((name, fileformat.RAW, data.shape, data.astype(np.float16 if half else np.float32)))
    return out


def save(
    model: nnx.Module,
    description: dict[str, Any],
    path: str | os.PathLike,
    *,
    fp16: bool = False,
    force: bool = False,
    normalization: Normalization | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes ``model`` (a trained network in evaluation mode, BN running statistics set) to ``path``.

    Args:
      model: a network of ``bsnn_jax.models``.
      description: the ``models.create`` keyword arguments that build ``model``'s architecture
        (``name``, ``variant``, ``timesteps``, ``num_classes``, ``input_shape``, ``neuron``),
        as ``Run.model_description`` gives them.
      fp16: store full-precision kernels in float16.
      force: overwrite an existing ``path``.
      normalization: what maps the dataset's stored images to model input (for ``predict``).
      source: free-form provenance stored in the manifest (workdir, step, dataset).

    Returns:
      ``{"path", "file_bytes", "header_bytes", "payload_bytes", "report_bytes", "folded_units"}``.

    Raises:
      ExportError: ``path`` exists and ``force`` is False, or ``description`` builds another architecture.
    """
    path = Path(path)
    if path.exists() and not force:
        raise ExportError(f"{path} already exists; choose another --out or pass --force to overwrite it")
    packed, folded = to_packed(model)
    _check_matches(packed, _skeleton(description))
    tensors = _tensors(packed, fp16)
    manifest = {
        "format": "bsnn-export",
        "model": description,
        "folded_units": folded,
        "bit_layout": BIT_LAYOUT,
        "fp_dtype": "float16" if fp16 else "float32",
        "normalization": dataclasses.asdict(normalization) if normalization is not None else None,
        "report_bytes": model_size(model).total_bytes,
        "source": source or {},
    }
    file_bytes = fileformat.write(path, manifest, tensors)
    payload = sum(t[3].nbytes for t in tensors)
    return {
        "path": str(path),
        "file_bytes": file_bytes,
        "header_bytes": file_bytes - payload,
        "payload_bytes": payload,
        "report_bytes": manifest["report_bytes"],
        "folded_units": folded,
    }


def _check_matches(packed: nnx.Module, skeleton: nnx.Module) -> None:
    have = {_path(p): tuple(v.shape) for p, v in nnx.to_flat_state(nnx.state(packed))}
    want = {_path(p): tuple(v.shape) for p, v in nnx.to_flat_state(nnx.state(skeleton))}
    if have != want:
        diff = sorted(set(have.items()) ^ set(want.items()))[:4]
        raise ExportError(
            f"the model does not have the architecture its description builds (first differences: {diff}); "
            "pass the models.create arguments the model was built with"
        )


def export_run(
    workdir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    step: int | None = None,
    best: bool = False,
    verify: int = 0,
    **kwargs,
) -> dict[str, Any]:
    """``save`` of a checkpoint of the run in ``workdir`` (latest, ``step``, or ``best``); kwargs go to ``save``.

    With ``verify=N`` the written file is loaded back and compared with the float model on the
    first N examples of the run's test split (:func:`agreement`); the result gets ``"verify"``.
    """
    from bsnn_jax.data.base import read_batch
    from bsnn_jax.train.restore import restore  # loading .bsnn files needs no training stack

    out = Path(out)
    if out.exists() and not kwargs.get("force", False):  # before the (slow) restore
        raise ExportError(f"{out} already exists; choose another --out or pass --force to overwrite it")
    restored = restore(workdir, step=step, best=best)
    model, dataset = restored.model, restored.dataset
    source = {"workdir": str(Path(workdir).absolute()), "step": restored.step, "dataset": restored.config.dataset.name}
    result = save(model, restored.description, out, normalization=dataset.normalization, source=source, **kwargs)
    result["step"] = restored.step
    if verify:
        records = read_batch(dataset.test, range(min(verify, len(dataset.test))))
        images = dataset.normalization(np.stack([r["image"] for r in records]))
        labels = np.array([r["label"] for r in records])
        result["verify"] = agreement(model, load(out), images, labels)
    return result


def agreement(
    model: nnx.Module, packed: PackedModel, images: np.ndarray, labels: np.ndarray | None = None, *, batch_size: int = 256
) -> dict[str, Any]:
    """How the packed model's predictions compare with the float ``model``'s on normalized ``images``.

    Returns ``{"examples", "identical_predictions"`` (fraction of equal argmax of the mean-over-T
    logits), ``"max_abs_logit_diff"``, ``"logits_within_1e-4"`` (fraction of examples whose logits
    all agree to 1e-4), and with ``labels`` ``"float_accuracy"``, ``"packed_accuracy"}``.
    """
    x = np.asarray(images, np.float32)
    a = batched_logits(mean_logits_fn(model), x, batch_size)
    b = packed.logits(x, batch_size=batch_size, normalized=True)
    diff = np.abs(a - b).max(axis=-1)
    out = {
        "examples": len(x),
        "identical_predictions": float(np.mean(a.argmax(-1) == b.argmax(-1))),
        "max_abs_logit_diff": float(diff.max()),
        "logits_within_1e-4": float(np.mean(diff <= 1e-4)),
    }
    if labels is not None:
        out["float_accuracy"] = float(np.mean(a.argmax(-1) == labels))
        out["packed_accuracy"] = float(np.mean(b.argmax(-1) == labels))
    return out


def mean_logits_fn(module: nnx.Module) -> Callable[[np.ndarray], jax.Array]:
    """Jitted ``x -> mean over T of module(x)``; event frames ``[B, T, ...]`` are made time-major."""
    graphdef, state = nnx.split(module)

    @compiler.jit
    def forward(state, x):
        if x.ndim == 5:
            x = jnp.swapaxes(x, 0, 1)
        return jnp.mean(nnx.merge(graphdef, state)(x), axis=0)

    return lambda x: forward(state, x)


def batched_logits(forward: Callable[[np.ndarray], jax.Array], x: np.ndarray, batch_size: int) -> np.ndarray:
    """``forward`` over ``x`` in batches of ``batch_size``; the last one is padded, so one shape compiles."""
    out = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - n,) + batch.shape[1:], batch.dtype)])
        out.append(np.asarray(forward(batch))[:n])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class PackedModel:
    """A loaded ``.bsnn`` file.

    * ``model(x)``: logits ``[T, B, K]`` of normalized input ``[B, H, W, C]`` or ``[T, B, H, W, C]``,
      exactly like the trained model's ``__call__`` (eager; ``logits`` is the jitted, batched path).
    * ``logits(images, batch_size=256, normalized=False)``: mean-over-T logits ``[N, K]`` (numpy).
    * ``predict(images, ...)``: predicted classes ``[N]`` (argmax of ``logits``).
    * ``manifest``: the file's manifest; ``module``: the packed ``nnx`` network.

    ``images`` are ``[N, H, W, C]`` (or ``[N, T, H, W, C]`` event frames) as the dataset stores
    them; the manifest's normalization is applied unless ``normalized=True``.
    """

    def __init__(self, module: nnx.Module, manifest: dict[str, Any]):
        self.module, self.manifest = module, manifest
        norm = manifest.get("normalization")
        self.normalization = Normalization(norm["scale"], tuple(norm["mean"]), tuple(norm["std"])) if norm else None
        self._forward = mean_logits_fn(module)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.module(x)

    def logits(self, images: np.ndarray, *, batch_size: int = 256, normalized: bool = False) -> np.ndarray:
        x = images if normalized or self.normalization is None else self.normalization(images)
        return batched_logits(self._forward, np.asarray(x, np.float32), batch_size)

    def predict(self, images: np.ndarray, *, batch_size: int = 256, normalized: bool = False) -> np.ndarray:
        return self.logits(images, batch_size=batch_size, normalized=normalized).argmax(-1)


def _binary_kernel_shapes(packed: nnx.Module) -> dict[str, tuple[int, ...]]:
    """``{"<layer>.kernel": shape}`` of the packed network's binary kernels: folded units' and packed synapses'."""
    return {
        _path(p) + ".kernel": m.kernel_shape
        for p, m in nnx.iter_modules(packed)
        if isinstance(m, PackedSynapse) or (isinstance(m, PackedConvUnit) and m.binary)
    }


def load(path: str | os.PathLike) -> PackedModel:
    """Reads, verifies and rebuilds a ``.bsnn`` file (see ``PackedModel``).

    Raises:
      ExportFormatError: truncated, corrupted, unsupported version, or tensors not matching the architecture.
    """
    manifest, arrays = fileformat.read(path)
    skeleton = _skeleton(manifest["model"])
    # Packed bits only carry their count: the declared shape is what tells a transposed kernel.
    declared = {t["name"]: tuple(t["shape"]) for t in manifest["tensors"] if t["encoding"] == fileformat.SIGN_BITS}
    for name, shape in _binary_kernel_shapes(skeleton).items():
        if declared.get(name, shape) != shape:
            raise fileformat.ExportFormatError(
                f"{path}: tensor {name} is a {list(declared[name])} kernel, the architecture in its manifest needs {list(shape)}"
            )
    graphdef, abstract = nnx.split(skeleton)
    flat = []
    for p, var in nnx.to_flat_state(abstract):
        name = _path(p)
        data = arrays.pop(name, None)
        if data is None or data.shape != tuple(var.shape):
            got = "missing" if data is None else f"shape {data.shape}"
            raise fileformat.ExportFormatError(f"{path}: tensor {name} is {got}, the architecture in its manifest needs {var.shape}")
        flat.append((p, var.replace(jnp.asarray(data, var.dtype))))
    if arrays:
        raise fileformat.ExportFormatError(f"{path}: tensors {sorted(arrays)[:4]} do not belong to the architecture in its manifest")
    return PackedModel(nnx.merge(graphdef, nnx.from_flat_state(flat)), manifest)
