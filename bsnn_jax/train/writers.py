"""TensorBoard event files and ``jax.profiler`` traces of a run, beside ``metrics.jsonl``.

``WORKDIR/tensorboard/`` holds the event files (written with tensorboardX, which needs neither
TensorFlow nor PyTorch) and, on request, the profiler's traces under ``plugins/profile/``, where
TensorBoard's profile plugin (and XProf) look for them: ``tensorboard --logdir WORKDIR/tensorboard``.

Tags:
  - ``window/loss``, ``window/accuracy``, ``window/objective``, ``window/grad_norm``,
    ``window/param_norm``: means over each logging window (``log_every_steps``) at its last step;
    ``window/flip_ratio_step``: the window's mean fraction of binarized weights one update flipped;
  - ``epoch/KEY`` for every number of the epoch's ``metrics.jsonl`` row, nested keys joined by
    ``/`` (``epoch/firing_rates/<layer>`` is AGMM Fig. 8, ``epoch/grad_stats/<layer>/var`` Eq. 16);
  - ``epoch/flip_ratio_layer/<layer>``: AGMM Eq. 8 per binarized layer (the row has the total);
  - images such as ``landscape`` (``bsnn landscape``, AGMM Fig. 2/7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bsnn_jax.metrics import flip_ratio

TENSORBOARD_DIR = "tensorboard"
WINDOW_SCALARS = ("loss", "accuracy", "objective", "grad_norm", "param_norm")


def flatten_numbers(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a (nested) row as ``{"a/b": value}``; None, text and booleans are left out."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            out.update(flatten_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float | np.number) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def layer_flip_ratios(before: Mapping[str, np.ndarray] | None, after: Mapping[str, np.ndarray]) -> dict[str, float]:
    """AGMM Eq. 8 for each layer alone: the fraction of its kernel's signs that differ."""
    if before is None:
        return {}
    return {layer: float(flip_ratio({layer: before[layer]}, {layer: after[layer]})) for layer in after}


class TensorBoard:
    """A run's event files in ``directory`` (see the module docstring for the tags), created at
    the first value written: a run refused before its first step leaves no file behind."""

    def __init__(self, directory: str | Path, *, flush_secs: int = 30):
        self.directory, self.flush_secs = Path(directory), flush_secs
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            from tensorboardX import SummaryWriter  # imports torch when installed: only for runs that log

            self._writer = SummaryWriter(str(self.directory), flush_secs=self.flush_secs)
        return self._writer

    def window(self, step: int, values: list[dict[str, Any]], *, flip_total: int) -> None:
        """The means of the fetched step metrics of one logging window, at its last ``step``."""
        for key in WINDOW_SCALARS:
            if key in values[0]:
                self.writer.add_scalar(f"window/{key}", float(np.mean([float(v[key]) for v in values])), step)
        if "flips" in values[0] and flip_total:
            self.writer.add_scalar("window/flip_ratio_step", float(np.mean([float(v["flips"]) for v in values])) / flip_total, step)

    def epoch(self, row: Mapping[str, Any], layer_flips: Mapping[str, float]) -> None:
        """Every number of the epoch's ``metrics.jsonl`` row, and the per-layer flip ratios."""
        step = int(row["step"])
        for tag, value in flatten_numbers(row).items():
            if tag not in ("epoch", "step", "time"):
                self.writer.add_scalar(f"epoch/{tag}", value, step)
        for layer, value in layer_flips.items():
            self.writer.add_scalar(f"epoch/flip_ratio_layer/{layer}", value, step)
        self.writer.flush()

    def image(self, tag: str, png: str | Path, step: int) -> None:
        """A PNG file (a figure the run's analysis drew) as an image summary."""
        import matplotlib.image

        pixels = matplotlib.image.imread(str(png))  # float [H, W, 3 or 4] in [0, 1]
        self.writer.add_image(tag, pixels[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class StepProfile:
    """A ``jax.profiler`` trace of the chosen optimizer steps (a contiguous range from the first
    to the last of ``steps``), written under ``directory/plugins/profile/<time>/``."""

    def __init__(self, directory: str | Path, steps: Iterable[int]):
        self.directory, steps = Path(directory), sorted(set(steps))
        self.first, self.last = (steps[0], steps[-1]) if steps else (None, None)
        self.active = False

    def before(self, step: int, state: Any) -> None:
        """Starts tracing before optimizer step ``step`` (1-based) if it is the first chosen."""
        if step == self.first:
            jax.block_until_ready(state)  # earlier, asynchronously dispatched steps stay out of it
            jax.profiler.start_trace(str(self.directory))
            self.active = True

    def after(self, step: int, state: Any) -> None:
        """Stops tracing after step ``step`` if it is the last chosen (waiting for it to finish)."""
        if self.active and step >= self.last:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
            self.active = False

    def close(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active = False


class RunLogs:
    """What a training run logs besides ``metrics.jsonl``: TensorBoard (on the writing host)
    and the profile of chosen steps (on every host, in its own folder when there are several)."""

    def __init__(self, workdir: str | Path, logging, *, writer: bool):
        directory = Path(workdir) / TENSORBOARD_DIR
        self.board = TensorBoard(directory) if logging.tensorboard and writer else None
        hosts = jax.process_count()
        self.profile = StepProfile(directory if hosts == 1 else directory / f"host{jax.process_index()}", logging.profile_steps)

    def __enter__(self) -> RunLogs:
        return self

    def __exit__(self, *exc) -> None:
        self.profile.close()
        if self.board:
            self.board.close()

    def window(self, step: int, values: list[dict[str, Any]], *, flip_total: int) -> None:
        if self.board:
            self.board.window(step, values, flip_total=flip_total)

    def epoch(self, row: Mapping[str, Any], signs_before: Mapping | None, signs_after: Mapping) -> None:
        if self.board:
            self.board.epoch(row, layer_flip_ratios(signs_before, signs_after))
