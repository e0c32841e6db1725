"""The metrics of one epoch, accumulated from windows of step metrics fetched from the device.

The jitted steps return per-step metrics (loss, accuracy, sign flips, gradient statistics);
the loop fetches them once per logging window (``log_every_steps``) rather than every step, so
the host never waits on the device between steps. :class:`EpochMetrics` adds a window, stops on
a non-finite loss, turns the epoch into its ``metrics.jsonl`` row and round-trips through a
checkpoint's meta, so a run stopped in the middle of an epoch reports the same row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bsnn_jax.metrics import StepFlipRatio, flip_ratio


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stopped without saving the bad state."""


def first_non_finite(values: list[dict[str, Any]]) -> tuple[int, str] | None:
    """``(index, what)`` of the first step whose loss, gradient norm or parameter norm is NaN/inf."""
    for i, v in enumerate(values):
        loss = float(v["loss"])
        if not np.isfinite(loss):
            return i, f"the training loss became {loss}"
        if not (np.isfinite(v["grad_norm"]) and np.isfinite(v["param_norm"])):
            return i, f"the gradients or parameters became non-finite (grad norm {v['grad_norm']}, parameter norm {v['param_norm']})"
    return None


@dataclasses.dataclass
class EpochMetrics:
    """Running sums over the steps of one epoch.

    Attributes:
      batch_size, flip_total, steps_per_epoch: the run's constants (global batch, number of
        binarized weights, steps per epoch); not saved, given again on restore.
      loss, correct, count: summed over training examples.
      seconds: training time of the epoch so far (kept across a stop and resume).
      flips: Larq's per-step flip ratio of the binarized kernels.
      grad_mean, grad_var: per layer, summed over steps (AGMM Prop. 1 / Eq. 16).
    """

    batch_size: int
    flip_total: int
    steps_per_epoch: int
    loss: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    seconds: float = 0.0
    flips: StepFlipRatio = dataclasses.field(default_factory=StepFlipRatio)
    grad_mean: dict[str, float] = dataclasses.field(default_factory=dict)
    grad_var: dict[str, float] = dataclasses.field(default_factory=dict)

    CONSTANTS = ("batch_size", "flip_total", "steps_per_epoch")

    def add_window(self, values: list[dict[str, Any]], *, first_step: int, last_good: str) -> None:
        """Adds the fetched metrics of steps ``first_step + 1, ...``.

        Raises:
          NonFiniteLossError: a step's loss, gradient or parameter norm is NaN/inf; nothing is
            added. The message names the step and ``last_good`` (where the last good checkpoint is).
        """
        bad = first_non_finite(values)
        if bad is not None:
            step = first_step + bad[0] + 1
            raise NonFiniteLossError(
                f"{bad[1]} at step {step} (epoch {(step - 1) // self.steps_per_epoch + 1}); the run stopped and {last_good}. "
                "Try a lower learning rate (--config.optimizer.learning_rate=...), warm-up (--config.schedule.warmup_epochs=1) "
                "or gradient clipping (--config.optimizer.grad_clip_norm=1.0); running again in this workdir resumes from the "
                "last checkpoint."
            )
        for v in values:
            self.flips.update(v["flips"], self.flip_total)
            for layer in v["grad_mean"]:
                self.grad_mean[layer] = self.grad_mean.get(layer, 0.0) + float(v["grad_mean"][layer])
                self.grad_var[layer] = self.grad_var.get(layer, 0.0) + float(v["grad_var"][layer])
        self.loss += float(np.sum(np.array([v["loss"] for v in values], np.float64))) * self.batch_size
        self.correct += float(sum(float(v["accuracy"]) for v in values)) * self.batch_size
        self.count += float(len(values) * self.batch_size)

    def progress(self) -> str:
        """The running training loss and accuracy, for the progress line."""
        return f"loss {self.loss / self.count:.4f} acc {100 * self.correct / self.count:.1f}%"

    def row(self, before: dict[str, np.ndarray] | None, after: dict[str, np.ndarray]) -> dict[str, Any]:
        """The epoch's training part of a ``metrics.jsonl`` row.

        ``flip_ratio`` is AGMM Eq. 8 between the sign snapshots ``before`` (the epoch start;
        ``None`` when unknown) and ``after``; ``flip_ratio_step`` Larq's mean per-step fraction;
        ``grad_stats`` the binarized layers' gradient mean and variance, averaged over steps.
        """
        steps = max(self.flips.steps, 1)
        return {
            "train_loss": self.loss / max(self.count, 1),
            "train_accuracy": self.correct / max(self.count, 1),
            "flip_ratio": None if before is None else float(flip_ratio(before, after)),
            "flip_ratio_step": self.flips.ratio_sum / steps,
            "grad_stats": {k: {"mean": self.grad_mean[k] / steps, "var": self.grad_var[k] / steps} for k in self.grad_mean},
        }

    def next_epoch(self) -> EpochMetrics:
        """Empty sums with the same constants."""
        return EpochMetrics(**{k: getattr(self, k) for k in self.CONSTANTS})

    def to_meta(self) -> dict[str, Any]:
        """The sums as a JSON-able dict for a checkpoint's meta (the constants are not saved)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.CONSTANTS}

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None, **constants: int) -> EpochMetrics:
        """The sums :meth:`to_meta` saved, or a new epoch for ``None``."""
        if not meta:
            return cls(**constants)
        return cls(**constants, **{**meta, "flips": StepFlipRatio(**meta["flips"])})
