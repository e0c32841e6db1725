"""Orbax checkpoints of a training run: keep-last-N plus the best by test accuracy, exact resume,
and clear errors (never a silent fresh start) for damaged or foreign checkpoints.

Each checkpoint step directory holds two items:

- ``state``: the whole :class:`~bsnn_jax.train.state.TrainState` (params incl. latent binary
  kernels, BatchNorm statistics, optimizer state, step, RNG), restored onto the current mesh;
  a latent-weight-free run (a flip optimizer) stores its +-1 kernels as int8 (:class:`Int8Kernels`);
- ``meta``: JSON: a fingerprint of the run (model, dataset, tree of array shapes), the data
  iterator position, the partial-epoch metric sums and the config.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint import checkpoint_managers

BEST_METRIC = "test_accuracy"


class _QuietPeriodicSaves(logging.Filter):
    """Orbax warns on every checkpoint saved without metrics when it tracks a best one; ours are
    the periodic and interrupted-run checkpoints, without metrics on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


logging.getLogger("absl").addFilter(_QuietPeriodicSaves())


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message says what is wrong and what to do."""


def tree_signature(tree: Any) -> list[list[str]]:
    """``[[path, shape, dtype], ...]`` of every array in ``tree``: what a checkpoint must match."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out.append(
            [jax.tree_util.keystr(path), "x".join(map(str, getattr(leaf, "shape", ()))), str(getattr(leaf, "dtype", type(leaf).__name__))]
        )
    return out


def signature_digest(signature: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(signature).encode()).hexdigest()[:16]


def make_fingerprint(model: dict[str, Any], dataset: str, state: Any) -> dict[str, Any]:
    """What identifies a run's checkpoints: the model description, the dataset and the shapes."""
    signature = tree_signature(state)
    return {"model": model, "dataset": dataset, "state_digest": signature_digest(signature), "state_signature": signature}


class Int8Kernels:
    """Stores the +-1 kernels of latent-weight-free training as int8 in checkpoints.

    The float32 kernels a jitted step computes with are exactly +-1 (the flip updates keep them
    so); on disk they take a quarter of the space and cannot hold a latent real value. Saving
    refuses a kernel that is not +-1 rather than round it.

    Args:
      is_binary: ``labels(params) -> tree of "binary"/"fp"`` (``optim.binary_labels(model)``).
    """

    def __init__(self, is_binary: Callable[[Any], Any]):
        self.is_binary = is_binary

    def _map(self, state: Any, fn: Callable[[Any], Any]) -> Any:
        labels = self.is_binary(state.params)
        return state.replace(params=jax.tree.map(lambda label, w: fn(w) if label == "binary" else w, labels, state.params))

    def encode(self, state: Any) -> Any:
        """``state`` with the binary kernels as int8 (abstract ``ShapeDtypeStruct`` leaves too)."""

        def to_int8(w):
            if isinstance(w, jax.ShapeDtypeStruct):
                return jax.ShapeDtypeStruct(w.shape, jnp.int8, sharding=w.sharding)
            if not bool(jnp.all(jnp.abs(w) == 1)):
                raise CheckpointError(
                    "a binary kernel is not +-1 (a latent-weight-free run keeps them exactly +-1); "
                    "it was changed outside the flip optimizer, so it is not saved as int8"
                )
            return w.astype(jnp.int8)

        return self._map(state, to_int8)

    def decode(self, state: Any, dtype: Any = jnp.float32) -> Any:
        """``state`` with int8 kernels back in ``dtype`` (+-1 exactly)."""
        return self._map(state, lambda w: w.astype(dtype))


def _fix_hint(directory: Path) -> str:
    return (
        f"Nothing in {directory} was changed. To start this config from scratch use a new --workdir; "
        f"to continue the run saved there, run it with its own config (bsnn train --workdir {directory.parent})."
    )


class RunCheckpoints:
    """An ``ocp.CheckpointManager`` for one run directory.

    Args:
      directory: where step directories go (``WORKDIR/checkpoints``).
      fingerprint: :func:`make_fingerprint` of the run that saves or restores.
      keep: the most recent checkpoints kept.
      keep_best: also keep the checkpoint with the highest test accuracy.
      codec: how the state is stored, e.g. :class:`Int8Kernels`; ``None`` stores it as it is.
        The fingerprint must describe the stored (encoded) state.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        fingerprint: dict[str, Any],
        keep: int = 2,
        keep_best: bool = True,
        codec: Int8Kernels | None = None,
    ):
        directory = epath.Path(directory)
        self.directory = directory if directory.is_absolute() else directory.absolute()
        self.fingerprint = fingerprint
        self.codec = codec
        policies: list[Any] = [checkpoint_managers.LatestN(n=keep)]
        if keep_best:
            policies.append(
                checkpoint_managers.BestN(
                    get_metric_fn=lambda m: m[BEST_METRIC], reverse=False, n=1, keep_checkpoints_without_metrics=False
                )
            )
        options = ocp.CheckpointManagerOptions(
            best_fn=lambda m: m[BEST_METRIC],
            best_mode="max",
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,  # unfinished saves of a killed run (never complete checkpoints)
            create=True,
        )
        try:
            self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        except Exception as e:  # noqa: BLE001 - orbax raises many kinds on damaged directories
            raise CheckpointError(
                f"could not open the checkpoints in {self.directory}: {type(e).__name__}: {e}. " + _fix_hint(self.directory)
            ) from e

    # ---------------------------------------------------------------------------------------

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def save(self, step: int, state: Any, meta: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        """Saves ``state`` and ``meta`` (plus the fingerprint) as checkpoint ``step``.

        A checkpoint already at ``step`` (a run resumed and stopped again at the same step) is
        left as it is: it holds the same state.
        """
        if step in self.manager.all_steps():
            return
        meta = {**meta, "fingerprint": self.fingerprint}
        if self.codec is not None:
            state = self.codec.encode(state)
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            metrics=metrics,
            force=True,
        )
        self.manager.wait_until_finished()

    def read_meta(self, step: int) -> dict[str, Any]:
        try:
            return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # noqa: BLE001
            raise self._damaged(step, e) from e

    def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
        """Restores checkpoint ``step`` with the structure and shardings of ``target``.

        Raises:
          CheckpointError: the checkpoint belongs to a different model/dataset/optimizer, or
            cannot be read (damaged files). The message names the problem and the fix.
        """
        meta = self.read_meta(step)
        self.check_fingerprint(meta.get("fingerprint"), step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        if self.codec is not None:
            abstract = self.codec.encode(abstract)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        except Exception as e:  # noqa: BLE001
            raise self._damaged(step, e) from e
        state = restored["state"]
        if self.codec is not None:
            state = self.codec.decode(state)
        return state, meta

    def restore_model(self, step: int, target: Any) -> Any:
        """Restores only ``step``, ``params`` and ``model_state`` of checkpoint ``step`` (the model,
        for inference) into ``target``, a ``TrainState`` whose ``opt_state`` and ``rng`` are ``None``.

        The run's model and dataset must match the checkpoint's, and every array of ``target``
        must be in it with the same shape and dtype.
        """
        meta = self.read_meta(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        if self.codec is not None:
            abstract = self.codec.encode(abstract)
        self.check_fingerprint(meta.get("fingerprint"), step, arrays=tree_signature(abstract))
        # A dict of the wanted fields: Orbax's partial restore skips the optimizer state, whose
        # structure an inference-only target does not know.
        wanted = {"step": abstract.step, "params": abstract.params, "model_state": abstract.model_state}
        try:
            args = ocp.args.PyTreeRestore(wanted, restore_args=ocp.checkpoint_utils.construct_restore_args(wanted), partial_restore=True)
            restored = self.manager.restore(step, args=ocp.args.Composite(state=args))
        except Exception as e:  # noqa: BLE001
            raise self._damaged(step, e) from e
        state = target.replace(**restored["state"])
        return self.codec.decode(state) if self.codec is not None else state

    def check_fingerprint(self, saved: dict[str, Any] | None, step: int, *, arrays: list[list[str]] | None = None) -> None:
        """Raises a :class:`CheckpointError` unless checkpoint ``step`` (its ``saved`` fingerprint)
        belongs to this run: the same model and dataset, and the same arrays (all of them, or
        those listed in ``arrays`` when only part of the state is restored)."""
        where = f"checkpoint {step} in {self.directory}"
        if not saved:
            raise CheckpointError(f"{where} has no run fingerprint: it was not written by bsnn train. " + _fix_hint(self.directory))
        mine = self.fingerprint
        problems = []
        if saved.get("dataset") != mine["dataset"]:
            problems.append(f"dataset {saved.get('dataset')!r} there, {mine['dataset']!r} here")
        for key in sorted(set(saved.get("model", {})) | set(mine["model"])):
            a, b = saved.get("model", {}).get(key), mine["model"].get(key)
            if a != b:
                problems.append(f"model.{key} {a!r} there, {b!r} here")
        theirs = {p: f"{s} {d}" for p, s, d in saved.get("state_signature", [])}
        ours = {p: f"{s} {d}" for p, s, d in (arrays if arrays is not None else mine["state_signature"])}
        if arrays is not None:
            differing = [p for p in sorted(ours) if theirs.get(p) != ours[p]]
        else:
            differing = (
                []
                if saved.get("state_digest") == mine["state_digest"]
                else [p for p in sorted(set(theirs) | set(ours)) if theirs.get(p) != ours.get(p)]
            )
        if not problems and differing:
            shown = ", ".join(f"{p}: {theirs.get(p, 'absent')} there, {ours.get(p, 'absent')} here" for p in differing[:4])
            problems.append(
                f"the saved arrays differ ({len(differing)} of them, e.g. {shown}); the optimizer settings "
                "(optimizer.name, weight_decay, grad_clip_norm, momentum) change the optimizer state"
            )
        if problems:
            raise CheckpointError(f"{where} belongs to a different run: " + "; ".join(problems) + ". " + _fix_hint(self.directory))

    def _damaged(self, step: int, error: Exception) -> CheckpointError:
        others = [s for s in self.all_steps() if s != step]
        alt = (
            f"move it aside (mv {self.directory / str(step)} {self.directory / (str(step) + '.damaged')}) "
            f"to resume from step {max(others)} instead"
            if others
            else "move it aside to start over"
        )
        return CheckpointError(
            f"checkpoint {step} in {self.directory} cannot be read ({type(error).__name__}: {error}); it was "
            f"probably cut short or edited. Nothing was changed. To go on, {alt}, or use a new --workdir."
        )

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> RunCheckpoints:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
