"""The training loop: ``fit(config, workdir)`` trains, or resumes, a run.

It trains ``config.num_epochs`` epochs, evaluates on the test split after every epoch
(``eval_every_epochs``), appends one row per epoch to ``WORKDIR/metrics.jsonl`` and keeps Orbax
checkpoints; run it again on the same workdir and it resumes exactly where the last checkpoint
left off. The pieces it puts together each live in their own module: the run directory
(``rundir``), the run's construction (``setup``), epoch metrics (``epoch``), evaluation
(``evaluation``) and console output (``console``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh
from rich.console import Console

from bsnn_jax.metrics import flip_kernels, model_size, signs
from bsnn_jax.train import mesh as mesh_lib
from bsnn_jax.train.checkpoint import RunCheckpoints
from bsnn_jax.train.console import Progress, StopRequests, format_row, run_header
from bsnn_jax.train.epoch import EpochMetrics
from bsnn_jax.train.evaluation import evaluate_split
from bsnn_jax.train.rundir import RunDir
from bsnn_jax.train.setup import Run, build
from bsnn_jax.train.state import TrainState
from bsnn_jax.train.step import Regularizer, make_eval_step
from bsnn_jax.train.warmstart import warm_start
from bsnn_jax.train.writers import RunLogs


@dataclasses.dataclass
class _Training:
    """The state of a run between steps: what a checkpoint saves, and what the loop carries."""

    run: Run
    rundir: RunDir
    checkpoints: RunCheckpoints
    state: TrainState
    step: int
    train_iter: Any
    epoch: EpochMetrics
    best: dict[str, Any]
    last_row: dict[str, Any]
    last_saved: int | None
    epoch_signs: dict | None = None
    window: list = dataclasses.field(default_factory=list)
    epoch_start: float = 0.0
    logs: RunLogs | None = None

    @classmethod
    def start(cls, run: Run, rundir: RunDir, checkpoints: RunCheckpoints, console: Console) -> _Training:
        """Restores the latest checkpoint, or starts at step 0; records the config in the workdir."""
        latest = checkpoints.latest_step()
        if latest is not None:
            state, meta = checkpoints.restore(latest, run.state)
        else:
            state, meta = (warm_start(run) if run.config.train.init_from else run.state), {}
        for note in rundir.prepare(run.config, resuming=latest is not None):
            console.print(f"[yellow]{note}[/]")
        train_iter = iter(run.train_loader)
        if meta:
            train_iter.set_state(meta["data_iterator"])
        constants = dict(
            batch_size=run.config.batch_size,
            flip_total=sum(int(k.size) for k in flip_kernels(run.model).values()),
            steps_per_epoch=run.steps_per_epoch,
        )
        t = cls(
            run,
            rundir,
            checkpoints,
            state,
            int(jax.device_get(state.step)),
            train_iter,
            EpochMetrics.from_meta(meta.get("epoch_sums"), **constants),
            meta.get("best", {"test_accuracy": None, "step": None}),
            meta.get("last_row", {}),
            latest,
        )
        t.epoch_start = time.time() - t.epoch.seconds
        epoch_start = t.step - (run.steps_per_epoch if t.epoch_ended_unrecorded() else t.step % run.steps_per_epoch)
        t.epoch_signs = rundir.load_signs(epoch_start)
        mesh_lib.barrier("bsnn_jax.signs.read")  # before process 0 writes a new snapshot
        if t.epoch_signs is None and t.step == epoch_start and t.step < run.total_steps:
            t.epoch_signs = t.signs()
            rundir.save_signs(t.step, t.epoch_signs)
        return t

    def epoch_ended_unrecorded(self) -> bool:
        """Whether the run stopped on the last step of an epoch before writing that epoch's row
        (a stop request agreed at that step): resuming writes it first."""
        return self.step > 0 and self.step % self.run.steps_per_epoch == 0 and self.last_row.get("step") != self.step

    def signs(self) -> dict:
        """sign(W) (int8) of the binarized layers' kernels, flattened, on the host (Eq. 8)."""
        model = self.run.defs.model(self.state.params, self.state.model_state)
        return {k: v.ravel() for k, v in jax.device_get(signs(flip_kernels(model))).items()}

    def train_step(self, train_step) -> None:
        self.logs.profile.before(self.step + 1, self.state)
        self.state, metrics = train_step(self.state, mesh_lib.shard_batch(next(self.train_iter), self.run.mesh))
        self.step += 1
        self.logs.profile.after(self.step, self.state)
        self.window.append(metrics)

    def flush(self) -> None:
        """Adds the fetched metrics of the steps since the last flush (stops on a non-finite loss)."""
        if not self.window:
            return
        last_good = (
            f"the last good checkpoint is step {self.last_saved} in {self.checkpoints.directory} (kept)"
            if self.last_saved is not None
            else "no checkpoint had been saved yet"
        )
        values = jax.device_get(self.window)
        self.epoch.add_window(values, first_step=self.step - len(self.window), last_good=last_good)
        self.logs.window(self.step, values, flip_total=self.epoch.flip_total)
        self.window = []

    def save(self, metrics: dict[str, float] | None = None) -> None:
        self.flush()
        self.epoch.seconds = time.time() - self.epoch_start
        meta = {
            "step": self.step,
            "data_iterator": self.train_iter.get_state(),
            "epoch_sums": self.epoch.to_meta(),
            "best": self.best,
            "last_row": self.last_row,
            "config": self.run.config.to_dict(),
        }
        self.checkpoints.save(self.step, self.state, meta, metrics=metrics)
        self.last_saved = self.step

    def end_epoch(self, eval_step) -> dict[str, Any]:
        """The epoch's row: training metrics, flips, evaluation; saved, appended, returned."""
        run = self.run
        self.flush()
        train_seconds = time.time() - self.epoch_start
        epoch = self.step // run.steps_per_epoch
        signs_now = self.signs()
        row = {
            "epoch": epoch,
            "step": self.step,
            **self.epoch.row(self.epoch_signs, signs_now),
            "learning_rate": run.learning_rate(self.step),
        }
        signs_before, self.epoch_signs = self.epoch_signs, signs_now
        self.rundir.save_signs(self.step, signs_now)
        evaluated = epoch % run.config.eval_every_epochs == 0 or self.step >= run.total_steps
        if evaluated:
            t0 = time.time()
            row.update(evaluate_split(eval_step, self.state.params, self.state.model_state, run.test, run.mesh))
            row["eval_seconds"] = time.time() - t0
        else:
            row.update({"test_loss": None, "test_accuracy": None})
        row.update(train_seconds=train_seconds, epoch_seconds=time.time() - self.epoch_start, time=time.time())
        if evaluated and (self.best["test_accuracy"] is None or row["test_accuracy"] > self.best["test_accuracy"]):
            self.best = {"test_accuracy": row["test_accuracy"], "step": self.step}
        self.last_row, self.epoch, self.epoch_start = row, self.epoch.next_epoch(), time.time()
        self.save({"test_accuracy": row["test_accuracy"]} if evaluated else None)
        self.rundir.append_metrics(row)
        self.logs.epoch(row, signs_before, signs_now)
        return row

    def save_on_interrupt(self, why: str, console: Console) -> None:
        where = f"stopped by {why} at step {self.step}"
        try:
            self.save()
            console.print(f"[yellow]{where}: checkpoint saved in {self.checkpoints.directory}; run the same command to resume[/]")
        except Exception as e:  # noqa: BLE001 - a second Ctrl-C while a step held the donated state
            console.print(f"[yellow]{where}; it could not be saved ({e}); the last checkpoint is step {self.last_saved}[/]")


def fit(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    until_step: int | None = None,
    mesh: Mesh | None = None,
    console: Console | None = None,
    regularizer: Regularizer | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) the run ``config`` in ``workdir``.

    Args:
      config: a config from :mod:`bsnn_jax.train.config` (``default_config()`` updated).
      workdir: the run directory (created if needed).
      until_step: stop after this optimizer step (saving a checkpoint), as if interrupted;
        running ``fit`` again resumes from it.
      mesh: the device mesh (default: ``config.mesh``).
      console: where progress and per-epoch lines go.
      regularizer: an extra differentiable loss term (``step.Regularizer``), e.g. a firing-rate
        target of your own; Q-SNN's is built in (``config.loss.firing_rate_weight``).

    Returns:
      The summary: the last epoch's metrics row plus ``best_test_accuracy``, ``best_step``,
      ``model_size_mb``, ``stopped_early``, ``workdir``.

    Raises:
      NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
      CheckpointError, RunDirectoryError, ConfigError: see their messages.
    """
    console = console or Console(soft_wrap=True)
    mesh_lib.initialize_distributed(config.mesh.distributed)
    run = build(config, mesh=mesh)
    rundir = RunDir(workdir, writer=jax.process_index() == 0)
    if not rundir.checkpoint_dir.exists():
        rundir.changes(config)  # refuses another run's config before the checkpoint folder is created
    size = model_size(run.model)
    stop_at = run.total_steps if until_step is None else min(until_step, run.total_steps)
    logs = RunLogs(rundir.path, config.logging, writer=rundir.writer)
    with rundir.checkpoints(run.fingerprint, config.checkpoint, run.optimizer.codec) as checkpoints, logs:
        t = _Training.start(run, rundir, checkpoints, console)
        t.logs = logs
        console.print(_opening(t, run, size, rundir))
        train_step = run.make_train_step(regularizer)
        eval_step = make_eval_step(run.defs, loss=config.loss.name, firing_rates=True, mesh=run.mesh)
        with Progress(console, config.progress) as progress, StopRequests() as stop:
            try:
                if t.epoch_ended_unrecorded():
                    console.print(format_row(t.end_epoch(eval_step), config.num_epochs), highlight=False)
                while t.step < stop_at:
                    epoch_end = (t.step // run.steps_per_epoch + 1) * run.steps_per_epoch
                    progress.start_epoch(
                        f"epoch {t.step // run.steps_per_epoch + 1}/{config.num_epochs}", run.steps_per_epoch, t.step % run.steps_per_epoch
                    )
                    while t.step < min(epoch_end, stop_at):
                        t.train_step(train_step)
                        info = None
                        if len(t.window) >= config.log_every_steps:
                            t.flush()
                            info = t.epoch.progress()
                        progress.advance(info)
                        if stop.agreed(at_window=info is not None):
                            raise KeyboardInterrupt
                        if config.checkpoint.every_steps and t.step % config.checkpoint.every_steps == 0 and t.step < epoch_end:
                            t.save()
                    if t.step < epoch_end:  # stopped by until_step inside an epoch
                        t.save()
                        break
                    console.print(format_row(t.end_epoch(eval_step), config.num_epochs), highlight=False)
            except KeyboardInterrupt:
                t.save_on_interrupt(stop.reason(), console)
                raise
    summary = {**t.last_row, "step": t.step, "best_test_accuracy": t.best["test_accuracy"], "best_step": t.best["step"]}
    return {**summary, "model_size_mb": size.size_mb, "stopped_early": t.step < run.total_steps, "workdir": str(rundir.path)}


def _opening(t: _Training, run: Run, size, rundir: RunDir) -> str:
    """What a run says before its first step: its header, that it resumes, or that it is done."""
    if t.last_saved is None:
        return run_header(run.config, size, steps_per_epoch=run.steps_per_epoch, devices=run.mesh.devices.size)
    if t.step >= run.total_steps and not t.epoch_ended_unrecorded():
        return f"{rundir.path}: the run is complete (step {t.step} of {run.total_steps}); nothing to do"
    return f"resuming {rundir.path} from step {t.step} (epoch {t.step // run.steps_per_epoch + 1} of {run.config.num_epochs})"
