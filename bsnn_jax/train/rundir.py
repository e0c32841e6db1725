"""A run directory: its files, which config keys identify a run, and the rules that keep what a
user saved from being lost or overwritten.

``WORKDIR/config.json`` (the resolved config), ``metrics.jsonl`` (one row per epoch),
``checkpoints/`` (Orbax) and ``flip_signs.npz`` (the epoch-start sign snapshot of AGMM Eq. 8).
Every command that reads or writes a run (``bsnn train``, ``evaluate``, ``report``, ``export``,
``landscape``) goes through :class:`RunDir`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from etils import epath

from bsnn_jax.train import config as config_lib
from bsnn_jax.train.checkpoint import RunCheckpoints
from bsnn_jax.train.mesh import barrier

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
SIGNS_FILE = "flip_signs.npz"

# Keys whose change makes a different run (a prefix ends with "."): resuming a workdir under
# other values is refused. The rest (epochs, learning rate, logging) may change on resume.
IDENTITY_KEYS = (
    "model.name",
    "model.variant",
    "model.timesteps",
    "model.neuron.",
    "dataset.name",
    "batch_size",
    "seed",
    "optimizer.name",
    "optimizer.binary",
    "train.mode",
    "train.online_update",
)
NOT_IDENTITY_KEYS = ("model.neuron.unroll", *config_lib.NEURON_BACKWARD_KEYS)  # how the LIF is compiled, not what it computes
# How the processes of this launch find each other: differs from process to process and from
# launch to launch, so it is neither saved in config.json nor compared with it.
LAUNCH_KEYS = ("mesh.distributed", "mesh.coordinator_address", "mesh.num_processes", "mesh.process_id")


class RunDirectoryError(RuntimeError):
    """The workdir holds another run (a different config) that this one would overwrite."""


def identifies_run(key: str) -> bool:
    """Whether a dotted config key is part of a run's identity (:data:`IDENTITY_KEYS`)."""
    return key not in NOT_IDENTITY_KEYS and any(key == k or (k.endswith(".") and key.startswith(k)) for k in IDENTITY_KEYS)


def unused_path(path: Path, *, numbered: bool = False) -> Path:
    """``path``, or the first free ``stem.N.suffix`` beside it (always that with ``numbered``)."""
    if not numbered and not path.exists():
        return path
    for n in itertools.count(1):
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")


def _without_launch(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` with the launch fields (:data:`LAUNCH_KEYS`) at their defaults."""
    defaults = config_lib.default_config().mesh
    out = config_lib.from_dict(config.to_dict(), source="config")
    with out.unlocked():
        for key in LAUNCH_KEYS:
            field = key.split(".")[1]
            out.mesh[field] = defaults[field]
    return out


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The files of one run. ``writer=False`` (every process but 0) reads and checks, never writes."""

    path: epath.Path  # a local path, or a gs:// one (etils.epath, as Orbax): every host must see it
    writer: bool = True

    def __post_init__(self):
        path = epath.Path(self.path)
        object.__setattr__(self, "path", path if path.is_absolute() else path.absolute())

    @property
    def config_file(self) -> epath.Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> epath.Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint_dir(self) -> epath.Path:
        return self.path / CHECKPOINT_DIR

    def load_config(self) -> ml_collections.ConfigDict:
        """The config the run saved in ``config.json``."""
        if not self.config_file.exists():
            raise RunDirectoryError(
                f"{self.config_file} does not exist: {self.path} is not a bsnn train workdir (train with --workdir {self.path} first)"
            )
        return config_lib.load_config_file(self.config_file)

    def checkpoints(self, fingerprint: dict[str, Any], checkpoint: ml_collections.ConfigDict, codec=None) -> RunCheckpoints:
        """The run's checkpoints (``checkpoint``: the config's ``checkpoint`` group)."""
        return RunCheckpoints(
            self.checkpoint_dir, fingerprint=fingerprint, keep=checkpoint.keep, keep_best=checkpoint.keep_best, codec=codec
        )

    def changes(self, config: ml_collections.ConfigDict) -> list[tuple[str, Any, Any]]:
        """How ``config`` differs from the saved one; a :class:`RunDirectoryError` if it is another run."""
        if not self.config_file.exists():
            return []
        try:
            saved = json.loads(self.config_file.read_text())
        except json.JSONDecodeError as e:
            raise RunDirectoryError(
                f"{self.config_file} is damaged ({e}); restore it, or move it away if {self.path} should start a new run"
            ) from None
        changes = [c for c in config_lib.diff(saved, config) if c[0] not in LAUNCH_KEYS]
        other_run = [c for c in changes if identifies_run(c[0])]
        if other_run:
            listed = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in other_run)
            raise RunDirectoryError(
                f"{self.path} holds a different run ({listed}). Nothing was changed. Use a new --workdir for this "
                f"config, or continue the saved run with: bsnn train --workdir {self.path}"
            )
        return changes

    def prepare(self, config: ml_collections.ConfigDict, *, resuming: bool) -> list[str]:
        """Checks that ``config`` may run here and records it in ``config.json``.

        Allowed changes (more epochs, another learning rate) keep the previous ``config.json`` as
        ``config.N.json``; metrics without a checkpoint (a run that never saved) are kept as
        ``metrics.N.jsonl`` before starting at step 0. Returns what was done, to print.
        """
        changes = self.changes(config)
        barrier("bsnn_jax.rundir.read")  # every process has read config.json before process 0 rewrites it
        if not self.writer:
            return []
        self.path.mkdir(parents=True, exist_ok=True)
        notes = []
        if changes:
            kept = self._archive(self.config_file)
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes)
            notes.append(f"config changed since the last run ({listed}); the previous one is kept as {kept.name}")
        if not resuming and self.metrics_file.exists() and self.metrics_file.read_text().strip():
            kept = self._archive(self.metrics_file)
            notes.append(f"{self.path} has metrics but no checkpoint: starting at step 0; the old metrics are kept as {kept.name}")
        self.config_file.write_text(config_lib.to_json(_without_launch(config)) + "\n")
        return notes

    @staticmethod
    def _archive(path: epath.Path) -> epath.Path:
        target = unused_path(path, numbered=True)
        path.rename(target)
        return target

    def append_metrics(self, row: dict[str, Any]) -> None:
        if self.writer:
            # Rewritten whole rather than appended: object stores (gs://) have no append.
            earlier = self.metrics_file.read_text() if self.metrics_file.exists() else ""
            self.metrics_file.write_text(earlier + json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` (empty before the first epoch ends)."""
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def save_signs(self, step: int, snapshot: dict[str, np.ndarray]) -> None:
        """Keeps the epoch-start signs (one bit per weight, 1.5 MB for ResNet-19), so the Eq. 8
        comparison survives a stop and resume in the middle of the epoch."""
        if not self.writer:
            return
        packed = {f"bits/{k}": np.packbits(v > 0) for k, v in snapshot.items()}
        sizes = {f"size/{k}": np.asarray(v.size) for k, v in snapshot.items()}
        partial = self.path / f"{SIGNS_FILE}.partial.npz"  # renamed into place: a stop never leaves half a file
        with partial.open("wb") as f:
            np.savez(f, step=np.asarray(step), **packed, **sizes)
        partial.replace(self.path / SIGNS_FILE)

    def load_signs(self, step: int) -> dict[str, np.ndarray] | None:
        """The snapshot saved at ``step`` as int8 +-1, or ``None`` if there is none for that step."""
        path = self.path / SIGNS_FILE
        if not path.exists():
            return None
        with path.open("rb") as fh, np.load(fh) as f:
            if int(f["step"]) != step:
                return None
            bits = {k[5:]: np.unpackbits(f[k])[: int(f["size/" + k[5:]])] for k in f.files if k.startswith("bits/")}
        return {k: np.where(v > 0, 1, -1).astype(np.int8) for k, v in bits.items()}
