"""The schema of a training run: ``ml_collections.ConfigDict`` with every field typed by a default.

:func:`default_config` is the schema; :func:`validate` checks names and values against the modules
that own them (models, losses, optimizers, datasets, ...). A config file defines ``get_config()``
(or ``get_config(arg)``, selected with ``path.py:arg``) returning :func:`default_config` with its
own values set; a ``config.json`` written by a run loads the same way (:func:`load_config_file`).
Named configs (the paper rows, the demo) are in :mod:`bsnn_jax.configs`; command-line overrides
(``--config.KEY=VALUE``) in :mod:`bsnn_jax.train.overrides`.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import ml_collections
from ml_collections import config_dict

from bsnn_jax import models, ops, optim
from bsnn_jax.data import KNOWN_DATASETS
from bsnn_jax.data.dvs import DVS_AUGMENTATIONS
from bsnn_jax.models.common import REMAT_CHOICES
from bsnn_jax.ops.lif import MEMBRANE_KEPT_EVERY, RESETS
from bsnn_jax.train import losses
from bsnn_jax.train.online import ONLINE_UPDATES
from bsnn_jax.train.step import TRAIN_MODES


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message says which and why."""


def _dataset_fields() -> ml_collections.ConfigDict:
    """``dataset``: which data, where, and how it is augmented and loaded."""
    g = ml_collections.ConfigDict()
    g.name = "fashion_mnist"
    g.data_dir = config_dict.placeholder(str)  # None: the dataset's default place
    g.augment = True  # the dataset's training augmentation (crop/flip/cutout for CIFAR, ...)
    g.autoaugment = False  # CIFAR: AutoAugment's CIFAR-10 policy (Q-SNN recipe)
    g.cutout = True  # CIFAR: Cutout, 1 hole of 16 px
    g.dvs_augmentation = "flip_roll"  # DVS-CIFAR10: flip_roll (TET / Q-SNN) | crop_flip (BSO code: pad 4, crop 48, flip)
    g.download = False
    g.num_threads = 2  # loader threads preparing batches ahead
    g.prefetch_batches = 8
    return g


def _model_fields() -> ml_collections.ConfigDict:
    """``model``: the network family, its variant and T, its neuron and how it is compiled."""
    g = ml_collections.ConfigDict()
    g.name = "small_cnn"
    g.variant = "agmm"  # agmm | bsnn | fp
    g.timesteps = 4  # T; event datasets are binned into this many frames
    g.time_fold = config_dict.placeholder(bool)  # None: per backend (nn.default_time_fold)
    g.compute_dtype = config_dict.placeholder(str)  # None: float32; "bfloat16": mixed precision convs
    g.stem = config_dict.placeholder(str)  # ResNets: cifar | imagenet | bireal (models.resnet.STEMS); None: the family's
    # "auto", "conv", "block" or "none": recompute per layer/block in BPTT's backward (models.common.REMAT_CHOICES)
    g.remat = config_dict.FieldReference("auto", field_type=str)
    g.encoder = "direct"  # the input before the first layer (models.MODEL_ENCODERS): direct | rate | latency | delta
    g.encoder_threshold = 0.1  # delta: the step between spikes; latency: inputs at or below it stay silent
    g.detach_scale = False  # True: no gradient through the binary kernels' scale gamma (AGMM Eq. 5; Q-SNN code)
    # nn.LIF arguments. unroll=True writes the T steps of the (elementwise) LIF recurrence out
    # for XLA, which fuses them: on this 2-core CPU, the first LIF layer of small_cnn (T=2,
    # batch 128) went from 81 ms to 4 ms fwd+bwd, the whole training step from 0.41 to 0.24 s.
    # An integer unrolls that many steps per loop iteration (1 = a rolled lax.scan).
    g.neuron = ml_collections.ConfigDict(
        {"tau": 0.5, "v_th": 1.0, "reset": "hard", "detach_reset": False, "surrogate": "triangle", "beta": 1.0}
    )
    g.neuron.unroll = config_dict.FieldReference(True, field_type=int)  # True, False or a step count
    _neuron_backward_fields(g.neuron)
    return g


# How BPTT differentiates the LIF (nn.LIF, ops.lif_scan), not what it computes (issue 20). fused:
# one custom_vjp over the T steps that keeps only the pre-reset membranes H[t] (the same memory
# as autodiff on XLA:CPU, not shown to be never slower, so off by default); save_dtype: keep
# H[t] in that dtype ("bfloat16": 10% less XLA memory at T >= 16 on VGG-11, the surrogate
# gradients from a rounded membrane; None: exact); membrane_kept_every: from T = 8 on, how often
# the unrolled scan keeps the membrane for BPTT (4: the memory per step of T = 4; 1: every step, the
# least elementwise work). benchmarks/results/bptt_memory.md.
NEURON_BACKWARD_KEYS = ("model.neuron.fused", "model.neuron.save_dtype", "model.neuron.membrane_kept_every")
SAVE_DTYPES = ("bfloat16", "float16", "float32")


def _neuron_backward_fields(neuron: ml_collections.ConfigDict) -> None:
    neuron.fused = False
    neuron.save_dtype = config_dict.placeholder(str)
    neuron.membrane_kept_every = MEMBRANE_KEPT_EVERY


def _check_neuron_backward(neuron: ml_collections.ConfigDict) -> None:
    _check(isinstance(neuron.fused, bool), f"model.neuron.fused must be true or false, got {neuron.fused!r}")
    dtype = neuron.save_dtype
    _check(
        dtype is None or dtype in SAVE_DTYPES,
        f"model.neuron.save_dtype must be one of {', '.join(SAVE_DTYPES)} or none (the membrane's own dtype), got {dtype!r}",
    )
    _check(
        dtype is None or neuron.fused,
        "model.neuron.save_dtype applies to the fused LIF only: set --config.model.neuron.fused=true or drop save_dtype",
    )
    every = neuron.membrane_kept_every
    _check(
        isinstance(every, int) and not isinstance(every, bool) and every >= 1,
        f"model.neuron.membrane_kept_every must be a step count >= 1 (4 by default, 1: every step), got {every!r}",
    )


def _add_sequence_fields(c: ml_collections.ConfigDict) -> None:
    """The fields of sequence data and the sequence families (``mlp``)."""
    c.model.recurrent = False  # mlp: a recurrent connection V S[t-1] in every hidden layer (nn.RecurrentLIF)
    c.dataset.duration = config_dict.placeholder(float)  # SHD/SSC: seconds binned into model.timesteps steps; None: 1 s


def _optimizer_fields() -> ml_collections.ConfigDict:
    """``optimizer``: the full-precision optimizer and how binary kernels learn (``flip``)."""
    g = ml_collections.ConfigDict()
    g.name = "sgd"  # sgd | adam | adamw
    g.learning_rate = 0.1
    g.momentum = 0.9
    g.nesterov = False
    g.weight_decay = 1e-4  # conv/linear kernels only, latent binary kernels included
    g.b1 = 0.9
    g.b2 = 0.999
    g.eps = 1e-8
    g.grad_clip_norm = 0.0  # 0 = no clipping
    # How binary kernels learn: "latent" (real latent weights, trained by optimizer.name through
    # the STE, AGMM) or a latent-weight-free flip rule on +-1 kernels: "bop", "bso", "t_bso"
    # (optimizer.name then trains only the full-precision rest: first conv, BN, classifier, alpha).
    g.binary = "latent"
    g.flip = ml_collections.ConfigDict()
    g.flip.threshold = 5e-7  # BSO's gamma (Bop's tau); BSO paper CIFAR value
    g.flip.rate = 1e-3  # 1 - beta1: the momentum's rate (Bop's gamma)
    g.flip.beta2 = 1 - 1e-5  # T-BSO's second-moment coefficient
    g.flip.eps = 1e-20  # T-BSO: sqrt(v[t] + eps) (or sqrt(v[t]) + eps, see below)
    g.flip.eps_outside_sqrt = False  # True: the BSO code's sqrt(v[t]) + eps (use eps=1e-10)
    g.flip.reset_momentum = False  # BSO code's reset path: zero m where a weight flips
    g.flip.decay_every_epochs = 0  # BSO code: threshold and rate x decay_factor every N epochs (0 = off)
    g.flip.decay_factor = 0.1
    return g


def default_config() -> ml_collections.ConfigDict:
    """Every field a training run reads, with its default value (and so its type).

    Groups: ``dataset``, ``model``, ``loss``, ``optimizer`` (with ``optimizer.flip`` for the
    latent-weight-free rules), ``train`` (BPTT or online), ``schedule``, ``checkpoint``, ``mesh``;
    top-level ``seed``, ``batch_size`` (global, over all devices and hosts), ``eval_batch_size``,
    ``num_epochs``, ``steps_per_epoch``, ``log_every_steps``, ``eval_every_epochs``, ``progress``;
    ``logging`` (TensorBoard, profiler).
    """
    c = ml_collections.ConfigDict()
    c.name = "run"
    c.seed = 0
    c.dataset = _dataset_fields()
    c.model = _model_fields()
    _add_sequence_fields(c)

    c.loss = ml_collections.ConfigDict()
    c.loss.name = "tet"  # tet: 1/T sum_t CE(out_t, y); mean_logits: CE(mean_t out_t, y); tet_mse: BSO's
    c.loss.firing_rate_weight = 0.0  # Q-SNN's lambda (5e-3 there); 0 = off
    c.loss.firing_rate_target = 0.5

    c.optimizer = _optimizer_fields()

    # How gradients are computed: "bptt" (backpropagation through the T steps) or "online" (one
    # step at a time, no gradient through time, presynaptic-trace weight gradients: OTTT / BSO).
    c.train = ml_collections.ConfigDict()
    c.train.mode = "bptt"
    c.train.online_update = "per_step"  # online: optimizer after every time step (BSO) or per_batch (OTTT)
    c.train.trace_decay = config_dict.placeholder(float)  # online trace lambda; None: model.neuron.tau
    # online trace: "constant" (OTTT's lambda) or "adaptive" (the BSO code's per-neuron decay, ops.adaptive_decay)
    c.train.trace = "constant"
    c.train.online_unroll = False  # online T-loop written out T times instead of one lax.scan (memory then grows with T)
    # A run directory whose latest checkpoint's weights start this run (train.warmstart): fine-tuning,
    # the BSO paper's two-stage ImageNet recipe. Ignored once this run has checkpoints of its own.
    c.train.init_from = ""

    c.schedule = ml_collections.ConfigDict()
    c.schedule.name = "cosine"  # cosine | constant
    c.schedule.warmup_epochs = 0.0
    c.schedule.end_learning_rate = 0.0

    c.batch_size = 64
    c.eval_batch_size = 256
    c.num_epochs = 1
    c.steps_per_epoch = 0  # 0: one pass over the training set; N: evaluate, checkpoint and log every N steps
    c.log_every_steps = 20
    c.eval_every_epochs = 1

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 0  # 0: at the end of every epoch only
    c.checkpoint.keep = 2  # most recent checkpoints kept
    c.checkpoint.keep_best = True  # also keep the one with the best test accuracy

    c.mesh = ml_collections.ConfigDict()
    c.mesh.num_devices = 0  # 0: every visible device
    c.mesh.distributed = False  # start the multi-process runtime, cluster auto-detected (or BSNN_DISTRIBUTED=1)
    # Or say where: every process the same address and count, each its own id (or BSNN_* variables).
    c.mesh.coordinator_address = config_dict.placeholder(str)  # HOST:PORT of process 0's coordinator
    c.mesh.num_processes = 0  # 0: not set
    c.mesh.process_id = -1  # -1: not set

    c.progress = True  # progress bar on a terminal

    # Beside metrics.jsonl: TensorBoard event files and, for the optimizer steps listed (e.g.
    # --config.logging.profile_steps=10,11), a jax.profiler trace, both in WORKDIR/tensorboard.
    c.logging = ml_collections.ConfigDict()
    c.logging.tensorboard = True
    c.logging.profile_steps = ()
    return c


# --------------------------------------------------------------------------------------------
# loading


def load_config_file(spec: str | os.PathLike) -> ml_collections.ConfigDict:
    """Loads ``path.py`` (its ``get_config()``), ``path.py:arg`` (``get_config("arg")``) or a
    ``config.json`` written by a run, on top of :func:`default_config`."""
    spec = str(spec)
    path_text, arg = spec, ""
    if ".py:" in spec:  # config_flags' path.py:arg
        path_text, arg = spec.split(".py:", 1)
        path_text += ".py"
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (expected a .py file with get_config() or a run's config.json)")
    if path.suffix == ".json":
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON ({e}); restore it or pass --config with the experiment's .py file") from None
        return from_dict(values, source=str(path))
    if path.suffix != ".py":
        raise ConfigError(f"config file {path} must be a .py file with get_config() or a .json file")
    module_spec = importlib.util.spec_from_file_location(f"_bsnn_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config() function")
    config = module.get_config(arg) if arg else module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, expected an ml_collections.ConfigDict")
    # Re-base on the defaults, so a config file that forgot a field still has every field.
    return from_dict(config.to_dict(), source=str(path))


def from_dict(values: dict[str, Any], *, source: str = "config") -> ml_collections.ConfigDict:
    """:func:`default_config` updated with ``values``; unknown keys are a :class:`ConfigError`."""
    config = default_config()
    _update(config, values, prefix="", source=source)
    config.lock()
    return config


def _update(config: ml_collections.ConfigDict, values: dict[str, Any], *, prefix: str, source: str) -> None:
    for key, value in values.items():
        path = prefix + key
        if key not in config:
            raise ConfigError(f"{source}: unknown config key {path!r}. {known_keys(config, key, prefix)}")
        current = config[key]
        if isinstance(current, ml_collections.ConfigDict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {path} must be a group of keys ({sorted(current)}), got {value!r}")
            _update(current, value, prefix=path + ".", source=source)
            continue
        set_field(config, key, _from_json_value(value, config.get_type(key)), path=path, source=source)


def _from_json_value(value: Any, field_type: type) -> Any:
    if isinstance(value, list) and field_type in (tuple, list):
        return field_type(value)
    return value


def _is_abbreviation(short: str, name: str) -> bool:
    """``lr`` of ``learning_rate``: same first letter, the letters of ``short`` in order in ``name``."""
    if not short or short[0] != name[0]:
        return False
    it = iter(name)
    return all(ch in it for ch in short)


def known_keys(config: ml_collections.ConfigDict, key: str, prefix: str) -> str:
    """The end of an unknown-key message: the closest key of ``config`` (or one that ``key``
    abbreviates) and every key at that level; ``prefix`` is the dotted path of ``config``."""
    known = sorted(config.keys())
    close = difflib.get_close_matches(key, known, n=1) or [k for k in known if _is_abbreviation(key, k)][:1]
    hint = f"Did you mean '{prefix}{close[0]}'? " if close else ""
    where = f"under {prefix[:-1]!r}" if prefix else "at the top level"
    return f"{hint}Known keys {where}: {', '.join(known)}"


def set_field(config: ml_collections.ConfigDict, key: str, value: Any, *, path: str, source: str) -> None:
    """Sets an existing field, type-checked by ml_collections (an int is accepted for a float);
    a value of the wrong type is a :class:`ConfigError` naming ``path`` and ``source``."""
    field_type = config.get_type(key)
    if value is not None and field_type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    try:
        config[key] = value  # a locked ConfigDict still lets existing fields change, type-checked
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {path} expects {type_name(field_type)}, got {value!r} ({e})") from None


def type_name(field_type: type) -> str:
    """``int`` for ``int``; the text of anything without a ``__name__``."""
    return getattr(field_type, "__name__", str(field_type))


# --------------------------------------------------------------------------------------------
# validation and comparison


def _choices() -> list[tuple[str, str, list[str]]]:
    """``(key, what it names, the names it takes)`` for every field that names something; each
    list comes from the module that owns those names."""
    return [
        ("dataset.name", "dataset", list(KNOWN_DATASETS)),
        ("model.name", "model", sorted(models.FAMILIES)),
        ("model.variant", "variant", sorted(models.VARIANTS)),
        ("model.neuron.reset", "reset", list(RESETS)),
        ("model.encoder", "encoder", list(models.MODEL_ENCODERS)),
        ("model.neuron.surrogate", "surrogate", sorted(ops.SURROGATES)),
        ("loss.name", "loss", sorted(losses.LOSSES)),
        ("optimizer.name", "optimizer", list(optim.OPTIMIZERS)),
        ("optimizer.binary", "binary training", list(optim.BINARY_TRAINING)),
        ("train.mode", "training mode", list(TRAIN_MODES)),
        ("train.online_update", "online update", list(ONLINE_UPDATES)),
        ("train.trace", "presynaptic trace", list(ops.TRACES)),
        ("dataset.dvs_augmentation", "DVS augmentation", list(DVS_AUGMENTATIONS)),
        ("schedule.name", "schedule", list(optim.SCHEDULES)),
    ]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_sequence_options(config: ml_collections.ConfigDict) -> None:
    """The options of sequence data and families, which only some datasets and families have."""
    duration = config.dataset.duration
    _check(
        duration is None or config.dataset.name in ("shd", "ssc"),
        f"dataset.duration bins spike recordings (shd, ssc), not dataset {config.dataset.name!r}; leave it unset",
    )
    _check(duration is None or duration > 0, f"dataset.duration must be > 0 seconds (or None for the dataset's), got {duration}")
    _check(
        not config.model.recurrent or config.model.name in models.RECURRENT_FAMILIES,
        f"model.recurrent=True needs a family with recurrent layers ({', '.join(models.RECURRENT_FAMILIES)}), "
        f"not model.name={config.model.name!r}; set --config.model.name=mlp or model.recurrent=False",
    )


def _check_training(config: ml_collections.ConfigDict) -> None:
    """The combinations of model, optimizer and training mode that cannot work together."""
    if config.optimizer.binary != "latent":
        _check(
            config.model.variant != "fp",
            f"optimizer.binary={config.optimizer.binary!r} flips binary kernels, but model.variant='fp' has none; use variant bsnn or agmm",
        )
        flip = config.optimizer.flip
        _check(flip.threshold >= 0, f"optimizer.flip.threshold must be >= 0, got {flip.threshold}")
        _check(0 < flip.rate <= 1, f"optimizer.flip.rate (1 - beta1) must be in (0, 1], got {flip.rate}")
        _check(0 <= flip.beta2 < 1, f"optimizer.flip.beta2 must be in [0, 1), got {flip.beta2}")
        _check(flip.decay_every_epochs >= 0, f"optimizer.flip.decay_every_epochs must be >= 0, got {flip.decay_every_epochs}")
    _check(
        not config.model.detach_scale or (config.model.variant != "fp" and config.optimizer.binary == "latent"),
        "model.detach_scale=true stops the gradient through the scale of latent binary kernels, which this run does "
        f"not have (model.variant={config.model.variant!r}, optimizer.binary={config.optimizer.binary!r}); "
        "use variant bsnn or agmm with optimizer.binary=latent, or drop model.detach_scale",
    )
    if config.optimizer.binary == "t_bso":
        _check(
            config.train.mode == "online" and config.train.online_update == "per_step",
            "optimizer.binary='t_bso' keeps one second moment per time step, so it needs online training with an "
            "update per step: --config.train.mode=online --config.train.online_update=per_step",
        )
    if config.train.mode == "online":
        _check(
            not config.loss.firing_rate_weight,
            "loss.firing_rate_weight needs the whole sequence's spikes, which online training does not keep; "
            "set it to 0 or use train.mode=bptt",
        )
        _check(
            config.model.encoder == "direct",
            f"model.encoder={config.model.encoder!r} codes all T steps of the input at once, which online training "
            "(one step per call) does not see; use model.encoder=direct or train.mode=bptt",
        )


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises a :class:`ConfigError` naming the field for any unknown name or impossible value."""
    for key, what, known in _choices():
        value = get_field(config, key)
        ok = value in known or (key == "dataset.name" and value.startswith("npz:"))
        _check(ok, f"unknown {what} {value!r} ({key}); known: {', '.join(known)}")
    remat, policies = config.model.remat, sorted(REMAT_CHOICES)
    _check(remat is None or remat in policies, f"unknown remat policy {remat!r} (model.remat); known: {', '.join(policies)}")
    _check_sequence_options(config)
    _check_training(config)
    _check_neuron_backward(config.model.neuron)
    for key in ("model.timesteps", "batch_size", "eval_batch_size", "num_epochs", "log_every_steps", "eval_every_epochs"):
        value = get_field(config, key)
        _check(isinstance(value, int) and value >= 1, f"{key} must be an integer >= 1, got {value!r}")
    _check(config.checkpoint.keep >= 1, f"checkpoint.keep must be >= 1, got {config.checkpoint.keep}")
    _check(config.checkpoint.every_steps >= 0, f"checkpoint.every_steps must be >= 0, got {config.checkpoint.every_steps}")
    _check(config.optimizer.learning_rate > 0, f"optimizer.learning_rate must be > 0, got {config.optimizer.learning_rate}")
    _check(config.optimizer.weight_decay >= 0, f"optimizer.weight_decay must be >= 0, got {config.optimizer.weight_decay}")
    warmup = config.schedule.warmup_epochs
    _check(0 <= warmup < config.num_epochs, f"schedule.warmup_epochs must be in [0, num_epochs={config.num_epochs}), got {warmup}")
    steps = config.logging.profile_steps
    _check(
        all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in steps),
        f"logging.profile_steps must be optimizer step numbers >= 1, such as --config.logging.profile_steps=10,11; got {steps!r}",
    )
    _check(config.mesh.num_devices >= 0, f"mesh.num_devices must be >= 0 (0 = all), got {config.mesh.num_devices}")
    _check(config.mesh.num_processes >= 0, f"mesh.num_processes must be >= 0 (0 = not set), got {config.mesh.num_processes}")
    n, i = config.mesh.num_processes, config.mesh.process_id
    _check(i < n or i == -1 or not n, f"mesh.process_id must be in [0, mesh.num_processes={n}), got {i}")


def get_field(config: ml_collections.ConfigDict, path: str) -> Any:
    """The value at a dotted ``path`` (``"model.neuron.tau"``)."""
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def flatten(values: dict[str, Any] | ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (tuples become lists, as in JSON)."""
    if isinstance(values, ml_collections.ConfigDict):
        values = values.to_dict()
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def diff(old: dict[str, Any] | ml_collections.ConfigDict, new: dict[str, Any] | ml_collections.ConfigDict) -> list[tuple[str, Any, Any]]:
    """``[(dotted key, old value, new value)]`` for every key whose value differs."""
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def to_json(config: ml_collections.ConfigDict) -> str:
    """The resolved config as indented JSON (what ``WORKDIR/config.json`` holds)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
