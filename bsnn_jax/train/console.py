"""What a training run shows on the console: progress, stop requests, and its lines.

Progress is a rich bar on a terminal and a plain line every 30 s elsewhere (logs, CI); Ctrl-C
and SIGTERM become a request the loop honours between two steps.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import jax
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from bsnn_jax.train.mesh import any_process


class Progress:
    """A rich progress bar over the steps of one epoch on a terminal; elsewhere (logs, CI) a plain
    line every ``every_seconds``."""

    def __init__(self, console: Console, enabled: bool, every_seconds: float = 30.0):
        self.console = console
        self.bar = enabled and console.is_terminal
        self.lines = enabled and not console.is_terminal
        self.every_seconds = every_seconds
        self.progress = (
            RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
                transient=True,
            )
            if self.bar
            else None
        )
        self.task = None
        self.description, self.total, self.completed, self.info = "", 0, 0, ""
        self.started = self.last_line = time.time()

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def start_epoch(self, description: str, total: int, completed: int) -> None:
        self.description, self.total, self.completed, self.info = description, total, completed, ""
        self.started = self.last_line = time.time()
        if self.progress:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(description, total=total, completed=completed, info="")

    def advance(self, info: str | None = None) -> None:
        self.completed += 1
        if info is not None:
            self.info = info
        if self.progress:
            self.progress.update(self.task, advance=1, **({"info": info} if info is not None else {}))
        elif self.lines and time.time() - self.last_line >= self.every_seconds:
            self.last_line = time.time()
            self.console.print(
                f"{self.description}  step {self.completed}/{self.total}  {self.info}  ({self.last_line - self.started:.0f} s)",
                highlight=False,
            )


class StopRequests:
    """Turns Ctrl-C (SIGINT) and SIGTERM (preemption) into a request the loop honours between two
    steps, so the state it saves is never one a step has half consumed. A second Ctrl-C raises
    at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: str | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def agreed(self, *, at_window: bool) -> bool:
        """Whether to stop now. With several processes all must stop at the same step and save
        the same checkpoint, so a request on any of them is shared at the steps where the loop
        fetches metrics (``at_window``, the same steps on every process); alone, at every step."""
        if jax.process_count() == 1:
            return self.requested is not None
        return at_window and any_process(self.requested is not None)

    def reason(self) -> str:
        """What stopped the run, for its last line."""
        return self.requested or ("a stop on another process" if jax.process_count() > 1 else "SIGINT")

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def format_row(row: dict[str, Any], num_epochs: int) -> str:
    text = (
        f"epoch {row['epoch']}/{num_epochs}  step {row['step']}  train loss {row['train_loss']:.4f} acc {100 * row['train_accuracy']:.2f}%"
    )
    if row.get("test_accuracy") is not None:
        text += f"  test loss {row['test_loss']:.4f} acc {100 * row['test_accuracy']:.2f}%"
    if row.get("firing_rate") is not None:
        text += f"  firing rate {row['firing_rate']:.4f}"
    if row.get("flip_ratio") is not None:
        text += f"  flips {row['flip_ratio']:.4f}"
    return text + f"  ({row['epoch_seconds']:.1f} s)"


def run_header(config, size, *, steps_per_epoch: int, devices: int) -> str:
    """The line a new run starts with: model, size, data and budget."""
    return (
        f"{config.model.name} ({config.model.variant}), T={config.model.timesteps}, "
        f"{size.total_params:,} parameters ({size.binary_params:,} binary), {size.size_mb:.3f} MB; "
        f"{config.dataset.name}: {steps_per_epoch} steps/epoch x {config.num_epochs} epochs, "
        f"batch {config.batch_size} on {devices} device(s)"
    )
