"""From a config to a run ready to train: data, model, one optimizer assembly, mesh and state.

:func:`assemble_optimizer` is the one place where a config's optimizer choice becomes an optax
transformation (the full-precision optimizer and schedule; for a flip rule, the latent-weight-free
model, the binary/fp partition and the int8 kernel codec of its checkpoints). Training,
benchmarks and tests all build their optimizer through it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh

from bsnn_jax import data as data_lib
from bsnn_jax import models, nn, optim
from bsnn_jax.train import config as config_lib
from bsnn_jax.train import mesh as mesh_lib
from bsnn_jax.train.checkpoint import Int8Kernels, make_fingerprint
from bsnn_jax.train.evaluation import EvalSplit, eval_split
from bsnn_jax.train.online import make_online_train_step
from bsnn_jax.train.state import ModelDef, TrainState, create_train_state
from bsnn_jax.train.step import Regularizer, make_train_step

# Encoders reading inputs as spike probabilities: they get pixels in [0, 1], not standardized ones.
INTENSITY_ENCODERS = ("rate", "latency")


def describe_model(config: ml_collections.ConfigDict, info: data_lib.DatasetInfo) -> dict[str, Any]:
    """The fields that determine a model's parameters (its checkpoint fingerprint)."""
    compiled_only = ("unroll", *(key.rsplit(".", 1)[1] for key in config_lib.NEURON_BACKWARD_KEYS))
    neuron = {k: v for k, v in config.model.neuron.to_dict().items() if k not in compiled_only}
    description = {
        "name": config.model.name,
        "variant": config.model.variant,
        "timesteps": config.model.timesteps,
        "num_classes": info.num_classes,
        "input_shape": list(info.input_shape),
        "neuron": neuron,
    }
    if config.model.encoder != "direct":  # only then: the fingerprints of earlier runs stay as they were
        description |= {"encoder": config.model.encoder, "encoder_threshold": config.model.encoder_threshold}
    if config.model.recurrent:
        description["recurrent"] = True
    return description


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
        stem=config.model.stem,
        encoder=config.model.encoder,
        encoder_threshold=config.model.encoder_threshold,
        detach_scale=config.model.detach_scale,
        **({"recurrent": True} if config.model.recurrent else {}),
        rngs=config.seed,
    )


@dataclasses.dataclass(frozen=True)
class OptimizerSetup:
    """What a config's optimizer choice makes of a model.

    Attributes:
      model: the model to train: the one given, or its latent-weight-free copy (``nn.latent_free``:
        +-1 kernels used as stored) for a flip rule.
      tx: the transformation of all parameters (for a flip rule, ``optim.binary_partition`` of the
        flip rule on the binary kernels and ``fp`` on the rest).
      schedule: the full-precision learning rate per optimizer update.
      updates_per_step: optimizer updates per training step (T for online per-step training).
      codec: how checkpoints store the state (int8 +-1 kernels for a flip rule), or ``None``.
    """

    model: nnx.Module
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    updates_per_step: int
    codec: Int8Kernels | None


def assemble_optimizer(config: ml_collections.ConfigDict, model: nnx.Module, *, steps_per_epoch: int) -> OptimizerSetup:
    """The optimizer of ``config`` for ``model``, trained ``config.num_epochs`` epochs of
    ``steps_per_epoch`` steps. Schedules count optimizer updates: online BSO updates after each
    of the T time steps."""
    online_per_step = config.train.mode == "online" and config.train.online_update == "per_step"
    updates_per_step = config.model.timesteps if online_per_step else 1
    updates_per_epoch = steps_per_epoch * updates_per_step
    o = config.optimizer
    schedule = optim.make_schedule(
        config.schedule.name,
        learning_rate=o.learning_rate,
        total_steps=config.num_epochs * updates_per_epoch,
        warmup_steps=int(round(config.schedule.warmup_epochs * updates_per_epoch)),
        end_value=config.schedule.end_learning_rate,
    )
    fp_tx = optim.make_optimizer(
        o.name,
        schedule,
        mask=optim.weight_decay_mask(nnx.state(model, nnx.Param)),
        weight_decay=o.weight_decay,
        momentum=o.momentum,
        nesterov=o.nesterov,
        b1=o.b1,
        b2=o.b2,
        eps=o.eps,
        grad_clip_norm=o.grad_clip_norm,
    )
    if o.binary == "latent":
        return OptimizerSetup(model, fp_tx, schedule, updates_per_step, codec=None)
    model = nn.latent_free(model)
    f = o.flip
    flip_tx = optim.make_flip_optimizer(
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
    return OptimizerSetup(model, tx, schedule, updates_per_step, codec=Int8Kernels(optim.binary_labels(model)))


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything built from a config, before training starts."""

    config: ml_collections.ConfigDict
    dataset: data_lib.Dataset
    defs: ModelDef
    state: TrainState
    optimizer: OptimizerSetup
    mesh: Mesh
    train_loader: data_lib.Loader
    test: EvalSplit
    steps_per_epoch: int
    fingerprint: dict[str, Any]

    @property
    def model(self) -> nnx.Module:
        return self.optimizer.model

    @property
    def total_steps(self) -> int:
        return self.config.num_epochs * self.steps_per_epoch

    def learning_rate(self, step: int) -> float:
        """The full-precision learning rate of the last update of training step ``step`` (1-based)."""
        return float(self.optimizer.schedule(step * self.optimizer.updates_per_step - 1))

    def make_train_step(self, regularizer: Regularizer | None = None):
        """The jitted training step of ``config.train.mode`` over the run's mesh (:func:`make_step`)."""
        return make_step(self.config, self.defs, self.optimizer.tx, mesh=self.mesh, regularizer=regularizer)


def make_step(
    config: ml_collections.ConfigDict,
    defs: ModelDef,
    tx: optax.GradientTransformation,
    *,
    mesh: Mesh | None = None,
    regularizer: Regularizer | None = None,
):
    """The jitted, state-donating training step of ``config.train.mode``: BPTT
    (``step.make_train_step``) or online, OTTT / BSO (``online.make_online_train_step``)."""
    if config.train.mode == "bptt":
        return make_train_step(
            defs,
            tx,
            loss=config.loss.name,
            firing_rate_weight=config.loss.firing_rate_weight,
            firing_rate_target=config.loss.firing_rate_target,
            regularizer=regularizer,
            mesh=mesh,
        )
    if regularizer is not None:
        raise config_lib.ConfigError("a regularizer needs the whole sequence; online training (train.mode=online) cannot add one")
    return make_online_train_step(
        defs,
        tx,
        timesteps=config.model.timesteps,
        loss=config.loss.name,
        update=config.train.online_update,
        trace_decay=config.train.trace_decay if config.train.trace_decay is not None else config.model.neuron.tau,
        trace=config.train.trace,
        unroll=config.train.online_unroll,
        mesh=mesh,
    )


def load_dataset(config: ml_collections.ConfigDict) -> data_lib.Dataset:
    """The dataset a config names, with its options.

    With several processes, process 0 loads first and the others after it: whatever loading
    prepares on shared storage (the DVS frame cache, a download) is then built once, not by
    every process into the same folder.
    """
    load = lambda: data_lib.load(  # noqa: E731
        config.dataset.name,
        data_dir=config.dataset.data_dir,
        timesteps=config.model.timesteps,
        autoaugment=config.dataset.autoaugment,
        cutout=config.dataset.cutout,
        dvs_augmentation=config.dataset.dvs_augmentation,
        download=config.dataset.download,
        **({} if config.dataset.duration is None else {"duration": config.dataset.duration}),
    )
    first = jax.process_index() == 0
    try:
        dataset = load() if first else None
    finally:  # the others must not wait forever on a process 0 that failed: they fail alike
        mesh_lib.barrier("bsnn_jax.dataset")
    dataset = dataset if first else load()
    return data_lib.sequences.intensities(dataset) if config.model.encoder in INTENSITY_ENCODERS else dataset


def check_processes_agree(config: ml_collections.ConfigDict, dataset: data_lib.Dataset) -> None:
    """Stops a multi-process run whose processes were started with another config or data, or
    see another number of devices (each process feeds its share of the batch to its devices)."""
    launch, info = set(mesh_lib.LAUNCH_ENV), dataset.info
    run_config = {**config.to_dict(), "mesh": {k: v for k, v in config.mesh.to_dict().items() if k not in launch}}
    mesh_lib.check_processes_agree(
        {
            "config": json.dumps(run_config, sort_keys=True, default=str),
            "dataset": f"{info.name}: {info.num_train} train / {info.num_test} test records of {info.input_shape}",
            "device count": f"{jax.local_device_count()} devices per process",
        }
    )


def run_mesh(config: ml_collections.ConfigDict, mesh: Mesh | None = None) -> Mesh:
    """``mesh``, or the config's (``mesh.num_devices``, 0 = all), checked against the batch sizes."""
    mesh = mesh if mesh is not None else mesh_lib.make_mesh(config.mesh.num_devices or None)
    mesh_lib.check_batch_size(config.batch_size, mesh)
    mesh_lib.check_batch_size(config.eval_batch_size, mesh)
    return mesh


def build(config: ml_collections.ConfigDict, *, mesh: Mesh | None = None) -> Run:
    """Loads the data and builds the model, optimizer and initial (replicated) train state."""
    config_lib.validate(config)
    mesh = run_mesh(config, mesh)
    dataset = load_dataset(config)
    check_processes_agree(config, dataset)
    train_loader = data_lib.make_loader(
        dataset,
        "train",
        batch_size=config.batch_size,
        seed=config.seed,
        augment=config.dataset.augment,
        num_threads=config.dataset.num_threads,
        prefetch_batches=config.dataset.prefetch_batches,
    )
    # An "epoch" of steps_per_epoch steps (evaluation, flip-ratio snapshot, checkpoint) when the
    # config sets one, else a full pass; the training stream continues across epoch boundaries.
    steps_per_epoch = config.steps_per_epoch or train_loader.steps_per_epoch
    optimizer = assemble_optimizer(config, create_model(config, dataset.info), steps_per_epoch=steps_per_epoch)
    defs, state = create_train_state(optimizer.model, optimizer.tx, seed=config.seed)
    state = mesh_lib.replicate(state, mesh)
    stored = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    fingerprint = make_fingerprint(
        describe_model(config, dataset.info), config.dataset.name, optimizer.codec.encode(stored) if optimizer.codec else stored
    )
    return Run(
        config=config,
        dataset=dataset,
        defs=defs,
        state=state,
        optimizer=optimizer,
        mesh=mesh,
        train_loader=train_loader,
        test=eval_split(dataset, config),
        steps_per_epoch=steps_per_epoch,
        fingerprint=fingerprint,
    )
