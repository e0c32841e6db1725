"""The fit/evaluate loop: data, model, optimizer, mesh and checkpoints put together.

``fit(config, workdir)`` trains for ``config.num_epochs`` epochs, evaluates on the test split
after every epoch (prediction = mean over T of the logits), appends one JSON line per epoch to
``WORKDIR/metrics.jsonl``, keeps Orbax checkpoints in ``WORKDIR/checkpoints`` and the resolved
config in ``WORKDIR/config.json``. Run it again on the same workdir and it resumes exactly where
the last checkpoint left off. ``evaluate(workdir)`` rebuilds the model from ``config.json`` and
scores a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bsnn_jax import data as data_lib
from bsnn_jax import models, optim
from bsnn_jax.metrics import flip_kernels, flip_ratio, model_size, signs
from bsnn_jax.train import config as config_lib
from bsnn_jax.train import mesh as mesh_lib
from bsnn_jax.train import optimizer as optimizer_lib
from bsnn_jax.train.checkpoint import CheckpointError, Int8Kernels, RunCheckpoints, make_fingerprint
from bsnn_jax.train.state import ModelDef, TrainState, create_train_state
from bsnn_jax.train.online import make_online_train_step
from bsnn_jax.train.step import Regularizer, make_eval_step, make_train_step

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"

# Keys that make a different run: resuming a checkpoint under other values is refused.
STRUCTURAL_KEYS = (
    "model.name", "model.variant", "model.timesteps", "model.neuron.", "dataset.name", "batch_size", "seed", "optimizer.name",
    "optimizer.binary", "train.mode", "train.online_update",
)
NOT_STRUCTURAL = ("model.neuron.unroll",)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stopped without saving the bad state."""


class RunDirectoryError(RuntimeError):
    """The workdir holds another run (a different config) that this one would overwrite."""


@dataclasses.dataclass
class Run:
    """Everything built from a config, before training starts."""

    config: ml_collections.ConfigDict
    dataset: data_lib.Dataset
    model: nnx.Module
    defs: ModelDef
    state: TrainState
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    mesh: Mesh
    train_loader: data_lib.Loader
    test_loader: data_lib.Loader
    steps_per_epoch: int
    total_steps: int
    eval_steps: int
    eval_batch_per_host: int
    fingerprint: dict[str, Any]
    updates_per_step: int  # optimizer updates per training step: T online per time step, else 1
    codec: Int8Kernels | None  # +-1 kernels stored as int8 (latent-weight-free runs)

    @property
    def model_description(self) -> dict[str, Any]:
        return self.fingerprint["model"]

    def checkpoints(self, workdir: Path) -> RunCheckpoints:
        """The checkpoints of this run in ``workdir``."""
        c = self.config.checkpoint
        return RunCheckpoints(workdir / CHECKPOINT_DIR, fingerprint=self.fingerprint, keep=c.keep, keep_best=c.keep_best, codec=self.codec)

    def learning_rate(self, step: int) -> float:
        """The full-precision learning rate of the last update of training step ``step`` (1-based)."""
        return float(self.schedule(step * self.updates_per_step - 1))

    def make_train_step(self, regularizer: Regularizer | None = None):
        """The jitted training step of ``config.train.mode``: BPTT, or online (OTTT / BSO)."""
        config = self.config
        if config.train.mode == "online":
            if regularizer is not None:
                raise config_lib.ConfigError("a regularizer needs the whole sequence; online training (train.mode=online) cannot add one")
            trace_decay = config.train.trace_decay if config.train.trace_decay is not None else config.model.neuron.tau
            return make_online_train_step(
                self.defs,
                self.tx,
                timesteps=config.model.timesteps,
                loss=config.loss.name,
                update=config.train.online_update,
                trace_decay=trace_decay,
                unroll=config.train.online_unroll,
                mesh=self.mesh,
            )
        return make_train_step(
            self.defs,
            self.tx,
            loss=config.loss.name,
            firing_rate_weight=config.loss.firing_rate_weight,
            firing_rate_target=config.loss.firing_rate_target,
            regularizer=regularizer,
            mesh=self.mesh,
        )


def describe_model(config: ml_collections.ConfigDict, info: data_lib.DatasetInfo) -> dict[str, Any]:
    """The fields that determine a model's parameters (its checkpoint fingerprint)."""
    neuron = {k: v for k, v in config.model.neuron.to_dict().items() if k != "unroll"}
    return {
        "name": config.model.name,
        "variant": config.model.variant,
        "timesteps": config.model.timesteps,
        "num_classes": info.num_classes,
        "input_shape": list(info.input_shape),
        "neuron": neuron,
    }


def create_model(config: ml_collections.ConfigDict, info: data_lib.DatasetInfo) -> nnx.Module:
    """The model a config describes, sized for the dataset ``info``."""
    if info.timesteps is not None and info.timesteps != config.model.timesteps:
        raise config_lib.ConfigError(
            f"{info.name} gives {info.timesteps} frames per example but model.timesteps is {config.model.timesteps}"
        )
    return models.create(
        config.model.name,
        variant=config.model.variant,
        num_classes=info.num_classes,
        timesteps=config.model.timesteps,
        input_shape=tuple(info.input_shape),
        time_fold=config.model.time_fold,
        compute_dtype=config.model.compute_dtype,
        remat=config.model.remat,
        neuron=config.model.neuron.to_dict(),
        rngs=config.seed,
    )


def build(config: ml_collections.ConfigDict, *, mesh: Mesh | None = None) -> Run:
    """Loads the data and builds the model, optimizer and initial (replicated) train state."""
    config_lib.validate(config)
    mesh = mesh if mesh is not None else mesh_lib.make_mesh(config.mesh.num_devices or None)
    mesh_lib.check_batch_size(config.batch_size, mesh)
    mesh_lib.check_batch_size(config.eval_batch_size, mesh)
    ds = data_lib.load(
        config.dataset.name,
        data_dir=config.dataset.data_dir,
        timesteps=config.model.timesteps,
        autoaugment=config.dataset.autoaugment,
        cutout=config.dataset.cutout,
        download=config.dataset.download,
    )
    hosts = jax.process_count()
    train_loader = data_lib.make_loader(
        ds,
        "train",
        batch_size=config.batch_size // hosts,
        seed=config.seed,
        augment=config.dataset.augment,
        num_threads=config.dataset.num_threads,
        prefetch_batches=config.dataset.prefetch_batches,
    )
    eval_batch_per_host = config.eval_batch_size // hosts
    test_loader = data_lib.make_loader(
        ds, "test", batch_size=eval_batch_per_host, num_threads=config.dataset.num_threads, prefetch_batches=config.dataset.prefetch_batches
    )
    # An "epoch" of steps_per_epoch steps (evaluation, flip-ratio snapshot, checkpoint) when the
    # config sets one, else a full pass; the training stream continues across epoch boundaries.
    steps_per_epoch = config.steps_per_epoch or train_loader.steps_per_epoch
    total_steps = config.num_epochs * steps_per_epoch
    # Schedules count optimizer updates: online BSO updates after each of the T time steps.
    online_per_step = config.train.mode == "online" and config.train.online_update == "per_step"
    updates_per_step = config.model.timesteps if online_per_step else 1
    updates_per_epoch = steps_per_epoch * updates_per_step
    schedule = optimizer_lib.make_schedule(
        config.schedule.name,
        learning_rate=config.optimizer.learning_rate,
        total_steps=total_steps * updates_per_step,
        warmup_steps=int(round(config.schedule.warmup_epochs * updates_per_epoch)),
        end_value=config.schedule.end_learning_rate,
    )
    model = create_model(config, ds.info)
    o = config.optimizer
    tx = fp_tx = optimizer_lib.make_optimizer(
        o.name,
        schedule,
        mask=optimizer_lib.weight_decay_mask(nnx.state(model, nnx.Param)),
        weight_decay=o.weight_decay,
        momentum=o.momentum,
        nesterov=o.nesterov,
        b1=o.b1,
        b2=o.b2,
        eps=o.eps,
        grad_clip_norm=o.grad_clip_norm,
    )
    codec = None
    if o.binary != "latent":  # latent-weight-free: +-1 kernels flipped by Bop/BSO/T-BSO, the rest by fp_tx
        optim.latent_free(model)
        f = o.flip
        flip_tx = optimizer_lib.make_flip_optimizer(
            o.binary,
            timesteps=config.model.timesteps,
            threshold=f.threshold,
            rate=f.rate,
            beta2=f.beta2,
            eps=f.eps,
            eps_outside_sqrt=f.eps_outside_sqrt,
            reset_momentum=f.reset_momentum,
            decay_steps=f.decay_every_epochs * updates_per_epoch,
            decay_factor=f.decay_factor,
        )
        tx = optim.binary_partition(model, binary=flip_tx, fp=fp_tx)
        codec = Int8Kernels(optim.binary_labels(model))
    defs, state = create_train_state(model, tx, seed=config.seed)
    state = mesh_lib.replicate(state, mesh)
    stored = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    fingerprint = make_fingerprint(describe_model(config, ds.info), config.dataset.name, codec.encode(stored) if codec else stored)
    eval_steps = math.ceil(math.ceil(ds.info.num_test / hosts) / eval_batch_per_host)
    return Run(
        config, ds, model, defs, state, tx, schedule, mesh, train_loader, test_loader,
        steps_per_epoch, total_steps, eval_steps, eval_batch_per_host, fingerprint, updates_per_step, codec,
    )


# --------------------------------------------------------------------------------------------
# evaluation


def _pad(batch: dict[str, np.ndarray] | None, template: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Pads a (possibly missing) batch to ``size`` examples with a ``mask`` of real ones."""
    if batch is None:
        n = 0
        batch = {k: v[:0] for k, v in template.items()}
    else:
        n = len(batch["label"])
    out = {}
    for k, v in batch.items():
        pad = np.zeros((size - n,) + v.shape[1:], v.dtype)
        out[k] = np.concatenate([v, pad]) if n < size else v
    out["mask"] = (np.arange(size) < n).astype(np.float32)
    return out


def run_eval(run: Run, state: TrainState, eval_step) -> dict[str, Any]:
    """Test loss, accuracy and firing rates over the whole test split."""
    sums, template = None, None
    it = iter(run.test_loader)
    for _ in range(run.eval_steps):
        batch = next(it, None)
        if template is None:
            template = batch
        out = eval_step(state.params, state.model_state, mesh_lib.shard_batch(_pad(batch, template, run.eval_batch_per_host), run.mesh))
        sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
    sums = {k: float(v) for k, v in jax.device_get(sums).items()}
    count = max(sums.pop("count"), 1.0)
    result = {"test_loss": sums.pop("loss") / count, "test_accuracy": sums.pop("correct") / count}
    if "spikes/all" in sums:
        result["firing_rate"] = sums.pop("spikes/all") / count
        result["firing_rates"] = {k.removeprefix("spikes/"): v / count for k, v in sums.items()}
    return result


# --------------------------------------------------------------------------------------------
# the workdir


def _archive(path: Path, stem: str, suffix: str) -> Path:
    n = 1
    while (path.parent / f"{stem}.{n}{suffix}").exists():
        n += 1
    target = path.parent / f"{stem}.{n}{suffix}"
    path.rename(target)
    return target


def _structural(key: str) -> bool:
    return key not in NOT_STRUCTURAL and any(key == k or (k.endswith(".") and key.startswith(k)) for k in STRUCTURAL_KEYS)


def prepare_workdir(
    workdir: Path, config: ml_collections.ConfigDict, has_checkpoint: bool, console: Console, *, write: bool = True
) -> None:
    """Checks that ``config`` may run in ``workdir`` and records it in ``config.json``.

    A saved config that differs in a key that changes the run (model, dataset, batch size,
    seed, optimizer) is a :class:`RunDirectoryError`; other changes (more epochs, another
    learning rate) are allowed when resuming, printed, and the previous ``config.json`` is
    kept as ``config.N.json``. ``write=False`` (processes other than 0) only checks.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / CONFIG_FILE
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RunDirectoryError(
                f"{path} is damaged ({e}); restore it, or move it away if {workdir} should start a new run"
            ) from None
        changes = config_lib.diff(saved, config)
        structural = [c for c in changes if _structural(c[0])]
        if structural:
            listed = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in structural)
            raise RunDirectoryError(
                f"{workdir} holds a different run ({listed}). Nothing was changed. Use a new --workdir for this "
                f"config, or continue the saved run with: bsnn train --workdir {workdir}"
            )
        if changes and write:
            kept = _archive(path, "config", ".json")
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes)
            console.print(f"[yellow]config changed since the last run ({listed}); the previous one is kept as {kept.name}[/]")
    metrics = workdir / METRICS_FILE
    if not write:
        return
    if not has_checkpoint and metrics.exists() and metrics.stat().st_size:
        kept = _archive(metrics, "metrics", ".jsonl")
        console.print(f"[yellow]{workdir} has metrics but no checkpoint: starting at step 0; the old metrics are kept as {kept.name}[/]")
    path.write_text(config_lib.to_json(config) + "\n")


def load_run_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The config a run saved in ``WORKDIR/config.json``."""
    path = Path(workdir) / CONFIG_FILE
    if not path.exists():
        raise RunDirectoryError(f"{path} does not exist: {workdir} is not a bsnn train workdir (train with --workdir {workdir} first)")
    return config_lib.load_config_file(path)


# --------------------------------------------------------------------------------------------
# fit


class _Progress:
    """A rich progress bar over the steps of one epoch on a terminal; elsewhere (logs, CI) a plain
    line every ``every_seconds``."""

    def __init__(self, console: Console, enabled: bool, every_seconds: float = 30.0):
        self.console = console
        self.bar = enabled and console.is_terminal
        self.lines = enabled and not console.is_terminal
        self.every_seconds = every_seconds
        self.progress = (
            Progress(
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


class _StopRequests:
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

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _format_row(row: dict[str, Any], num_epochs: int) -> str:
    text = (
        f"epoch {row['epoch']}/{num_epochs}  step {row['step']}  "
        f"train loss {row['train_loss']:.4f} acc {100 * row['train_accuracy']:.2f}%"
    )
    if row.get("test_accuracy") is not None:
        text += f"  test loss {row['test_loss']:.4f} acc {100 * row['test_accuracy']:.2f}%"
    if row.get("firing_rate") is not None:
        text += f"  firing rate {row['firing_rate']:.4f}"
    if row.get("flip_ratio") is not None:
        text += f"  flips {row['flip_ratio']:.4f}"
    return text + f"  ({row['epoch_seconds']:.1f} s)"


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
    workdir = Path(workdir).absolute()
    mesh_lib.initialize_distributed(config.mesh.distributed)
    run = build(config, mesh=mesh)
    checkpoints = run.checkpoints(workdir)
    try:
        return _fit(run, workdir, checkpoints, until_step, console, regularizer)
    finally:
        checkpoints.close()


def _new_epoch_sums() -> dict[str, Any]:
    return {"loss": 0.0, "correct": 0.0, "count": 0.0, "seconds": 0.0, "steps": 0, "flip_fraction": 0.0, "grad_mean": {}, "grad_var": {}}


SIGNS_FILE = "flip_signs.npz"


def _signs(run: Run, state: TrainState) -> dict[str, np.ndarray]:
    """sign(W) (int8, sign(0) = +1) of the binarized layers' kernels, flattened, on the host."""
    return {k: np.asarray(v).ravel() for k, v in jax.device_get(signs(flip_kernels(run.defs.model(state.params, state.model_state)))).items()}


def _save_signs(workdir: Path, step: int, snapshot: dict[str, np.ndarray]) -> None:
    # One bit per weight (1.5 MB for ResNet-19): the epoch-start snapshot Eq. 8 compares against
    # must survive a stop and resume in the middle of the epoch.
    packed = {f"bits/{k}": np.packbits(v > 0) for k, v in snapshot.items()}
    sizes = {f"size/{k}": np.asarray(v.size) for k, v in snapshot.items()}
    np.savez(workdir / SIGNS_FILE, step=np.asarray(step), **packed, **sizes)


def _load_signs(workdir: Path, step: int) -> dict[str, np.ndarray] | None:
    path = workdir / SIGNS_FILE
    if not path.exists():
        return None
    with np.load(path) as f:
        if int(f["step"]) != step:
            return None
        bits = {k[5:]: np.unpackbits(f[k])[: int(f["size/" + k[5:]])] for k in f.files if k.startswith("bits/")}
    return {k: np.where(v > 0, 1, -1).astype(np.int8) for k, v in bits.items()}


def _flip_and_gradient_row(sums: dict[str, Any], before: dict[str, np.ndarray] | None, after: dict[str, np.ndarray]) -> dict[str, Any]:
    """The epoch's flip ratios (AGMM Eq. 8 between epoch ends; Larq's mean per-step fraction)
    and the binarized layers' mean gradient mean and variance over its steps."""
    steps = max(sums["steps"], 1)
    return {
        "flip_ratio": None if before is None else float(flip_ratio(before, after)),
        "flip_ratio_step": sums["flip_fraction"] / steps,
        "grad_stats": {k: {"mean": sums["grad_mean"][k] / steps, "var": sums["grad_var"][k] / steps} for k in sums["grad_mean"]},
    }


def _fit(
    run: Run, workdir: Path, checkpoints: RunCheckpoints, until_step: int | None, console: Console, regularizer: Regularizer | None
) -> dict[str, Any]:
    config = run.config
    latest = checkpoints.latest_step()
    if latest is not None:  # checks the fingerprint before touching the workdir
        state, meta = checkpoints.restore(latest, run.state)
    else:
        state, meta = run.state, {}
    is_main = jax.process_index() == 0
    prepare_workdir(workdir, config, latest is not None, console, write=is_main)

    train_iter = iter(run.train_loader)
    if meta:
        train_iter.set_state(meta["data_iterator"])
        if latest >= run.total_steps:
            console.print(f"{workdir}: the run is complete (step {latest} of {run.total_steps}); nothing to do")
        else:
            console.print(f"resuming {workdir} from step {latest} (epoch {latest // run.steps_per_epoch + 1} of {config.num_epochs})")
    sums = dict(meta.get("epoch_sums", _new_epoch_sums()))
    best = meta.get("best", {"test_accuracy": None, "step": None})
    last_row: dict[str, Any] = meta.get("last_row", {})

    size = model_size(run.model)
    if latest is None:
        console.print(
            f"{config.model.name} ({config.model.variant}), T={config.model.timesteps}, "
            f"{size.total_params:,} parameters ({size.binary_params:,} binary), {size.size_mb:.3f} MB; "
            f"{config.dataset.name}: {run.steps_per_epoch} steps/epoch x {config.num_epochs} epochs, "
            f"batch {config.batch_size} on {run.mesh.devices.size} device(s)"
        )

    train_step = run.make_train_step(regularizer)
    eval_step = make_eval_step(run.defs, loss=config.loss.name, firing_rates=True, mesh=run.mesh)

    step = int(jax.device_get(state.step))
    flip_total = sum(int(k.size) for k in flip_kernels(run.model).values())
    epoch_signs = _load_signs(workdir, step - step % run.steps_per_epoch)
    if epoch_signs is None and step % run.steps_per_epoch == 0 and step < run.total_steps:
        epoch_signs = _signs(run, state)
        if is_main:
            _save_signs(workdir, step, epoch_signs)
    window: list[dict[str, jax.Array]] = []
    window_first_step = step
    stopped_early = False
    last_saved = latest
    epoch_start = time.time() - sums.get("seconds", 0.0)

    def flush() -> None:
        """Fetches the metrics of the steps since the last flush; stops on a non-finite loss."""
        nonlocal window, window_first_step
        if not window:
            return
        values = jax.device_get(window)
        losses = np.array([v["loss"] for v in values], np.float64)
        finite = np.isfinite(losses) & np.array([np.isfinite(v["grad_norm"]) and np.isfinite(v["param_norm"]) for v in values])
        if not finite.all():
            i = int(np.argmin(finite))
            bad = window_first_step + i + 1
            what = (
                f"the training loss became {losses[i]}" if not np.isfinite(losses[i])
                else f"the gradients or parameters became non-finite (grad norm {values[i]['grad_norm']}, "
                f"parameter norm {values[i]['param_norm']})"
            )
            good = f"the last good checkpoint is step {last_saved} in {checkpoints.directory} (kept)" if last_saved is not None else "no checkpoint had been saved yet"
            raise NonFiniteLossError(
                f"{what} at step {bad} "
                f"(epoch {(bad - 1) // run.steps_per_epoch + 1}); the run stopped and {good}. Try a lower learning rate "
                f"(--config.optimizer.learning_rate=...), warm-up (--config.schedule.warmup_epochs=1) or gradient clipping "
                f"(--config.optimizer.grad_clip_norm=1.0); running again in this workdir resumes from the last checkpoint."
            )
        n = config.batch_size
        sums["steps"] += len(values)
        sums["flip_fraction"] += sum(float(v["flips"]) for v in values) / flip_total
        for key in ("grad_mean", "grad_var"):
            for layer in values[0][key]:
                sums[key][layer] = sums[key].get(layer, 0.0) + sum(float(v[key][layer]) for v in values)
        sums["loss"] += float(losses.sum()) * n
        sums["correct"] += float(sum(float(v["accuracy"]) for v in values)) * n
        sums["count"] += float(len(values) * n)
        window, window_first_step = [], window_first_step + len(values)

    def save(metrics: dict[str, float] | None = None) -> None:
        nonlocal last_saved
        flush()
        sums["seconds"] = time.time() - epoch_start
        checkpoints.save(
            step,
            state,
            {
                "step": step,
                "data_iterator": train_iter.get_state(),
                "epoch_sums": sums,
                "best": best,
                "last_row": last_row,
                "config": config.to_dict(),
            },
            metrics=metrics,
        )
        last_saved = step

    with _Progress(console, config.progress) as progress, _StopRequests() as stop:
        try:
            while step < run.total_steps:
                epoch = step // run.steps_per_epoch  # 0-based
                epoch_end = (epoch + 1) * run.steps_per_epoch
                progress.start_epoch(f"epoch {epoch + 1}/{config.num_epochs}", run.steps_per_epoch, step - epoch * run.steps_per_epoch)
                while step < epoch_end:
                    batch = mesh_lib.shard_batch(next(train_iter), run.mesh)
                    state, metrics = train_step(state, batch)
                    step += 1
                    window.append(metrics)
                    info = None
                    if len(window) >= config.log_every_steps:
                        flush()
                        info = f"loss {sums['loss'] / sums['count']:.4f} acc {100 * sums['correct'] / sums['count']:.1f}%"
                    progress.advance(info)
                    if stop.requested:
                        raise KeyboardInterrupt
                    if until_step is not None and step >= until_step:
                        break
                    if config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0 and step < epoch_end:
                        save()
                if step < epoch_end:  # stopped by until_step
                    stopped_early = True
                    save()
                    break
                # end of an epoch
                flush()
                train_seconds = time.time() - epoch_start
                row: dict[str, Any] = {
                    "epoch": epoch + 1,
                    "step": step,
                    "train_loss": sums["loss"] / max(sums["count"], 1),
                    "train_accuracy": sums["correct"] / max(sums["count"], 1),
                    "learning_rate": run.learning_rate(step),
                    **_flip_and_gradient_row(sums, epoch_signs, (signs_now := _signs(run, state))),
                }
                epoch_signs = signs_now
                if is_main:
                    _save_signs(workdir, step, epoch_signs)
                evaluated = (epoch + 1) % config.eval_every_epochs == 0 or step >= run.total_steps
                if evaluated:
                    t0 = time.time()
                    row.update(run_eval(run, state, eval_step))
                    row["eval_seconds"] = time.time() - t0
                else:
                    row.update({"test_loss": None, "test_accuracy": None})
                row["train_seconds"] = train_seconds
                row["epoch_seconds"] = time.time() - epoch_start
                row["time"] = time.time()
                if evaluated and (best["test_accuracy"] is None or row["test_accuracy"] > best["test_accuracy"]):
                    best = {"test_accuracy": row["test_accuracy"], "step": step}
                last_row = row
                sums = _new_epoch_sums()
                epoch_start = time.time()
                save({"test_accuracy": row["test_accuracy"]} if evaluated else None)
                if is_main:
                    with open(workdir / METRICS_FILE, "a") as f:
                        f.write(json.dumps(row) + "\n")
                console.print(_format_row(row, config.num_epochs), highlight=False)
                if until_step is not None and step >= until_step:
                    stopped_early = step < run.total_steps
                    break
        except KeyboardInterrupt:
            why = stop.requested or "SIGINT"
            try:
                save()
                console.print(f"[yellow]stopped by {why} at step {step}: checkpoint saved in {checkpoints.directory}; run the same command to resume[/]")
            except Exception as e:  # noqa: BLE001 - a second Ctrl-C while a step held the donated state
                console.print(f"[yellow]stopped by {why} at step {step}; it could not be saved ({e}); the last checkpoint is step {last_saved}[/]")
            raise

    summary = dict(last_row)
    summary.update(
        {
            "step": step,
            "best_test_accuracy": best["test_accuracy"],
            "best_step": best["step"],
            "model_size_mb": size.size_mb,
            "stopped_early": stopped_early,
            "workdir": str(workdir),
        }
    )
    return summary


# --------------------------------------------------------------------------------------------
# evaluate


def restore(
    workdir: str | Path, *, step: int | None = None, best: bool = False, mesh: Mesh | None = None
) -> tuple[Run, TrainState, int]:
    """Rebuilds the run in ``workdir`` from its ``config.json`` and restores one checkpoint.

    Args:
      workdir: a directory written by :func:`fit`.
      step: the checkpoint step (default: the latest, or the best with ``best=True``).
      best: use the checkpoint with the best test accuracy.

    Returns:
      ``(run, state, step)``; ``run.defs.model(state.params, state.model_state)`` is the trained
      model in evaluation mode.
    """
    workdir = Path(workdir).absolute()
    config = load_run_config(workdir)
    run = build(config, mesh=mesh)
    directory = workdir / CHECKPOINT_DIR
    with run.checkpoints(workdir) as checkpoints:
        steps = checkpoints.all_steps()
        if not steps:
            raise CheckpointError(f"{directory} holds no checkpoint yet: train first (bsnn train --workdir {workdir})")
        if step is None:
            step = checkpoints.best_step() if best else checkpoints.latest_step()
        elif step not in steps:
            raise CheckpointError(f"no checkpoint at step {step} in {directory}; available: {steps}")
        state, _ = checkpoints.restore(step, run.state)
    return run, state, int(step)


def evaluate(
    workdir: str | Path,
    *,
    step: int | None = None,
    best: bool = False,
    mesh: Mesh | None = None,
) -> dict[str, Any]:
    """Scores a checkpoint of the run in ``workdir`` on its test split.

    Args:
      workdir: a directory written by :func:`fit`.
      step: the checkpoint step (default: the latest, or the best with ``best=True``).
      best: use the checkpoint with the best test accuracy.

    Returns:
      ``{"step", "test_loss", "test_accuracy", "firing_rate", "firing_rates", "model_size_mb",
      "model", "dataset"}``.
    """
    run, state, step = restore(workdir, step=step, best=best, mesh=mesh)
    config = run.config
    result = run_eval(run, state, make_eval_step(run.defs, loss=config.loss.name, firing_rates=True, mesh=run.mesh))
    return {
        "step": int(step),
        **result,
        "model_size_mb": model_size(run.model).size_mb,
        "model": run.model_description,
        "dataset": config.dataset.name,
    }
