"""Experiment configurations: ``ml_collections.ConfigDict`` with every field typed by a default.

A config file (``experiments/configs/*.py``) defines ``get_config()`` (or ``get_config(arg)``,
selected with ``path.py:arg``) returning :func:`default_config` with its own values set; a
``config.json`` written by a run loads the same way. Command-line overrides follow
``ml_collections.config_flags``: ``--config.optimizer.learning_rate=0.05`` or
``--config.num_epochs 3``, nested keys with dots, each value coerced to the type of the field it
replaces (``true``/``false`` for booleans, Python literals for tuples, ``none`` for an
optional field). An unknown key is an error that lists the keys of that level.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ml_collections
from ml_collections import config_dict

from bsnn_jax import models, optim
from bsnn_jax.data import KNOWN_DATASETS
from bsnn_jax.train import losses
from bsnn_jax.train.online import ONLINE_UPDATES
from bsnn_jax.train.step import TRAIN_MODES

OVERRIDE_PREFIX = "--config."


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message says which and why."""


def default_config() -> ml_collections.ConfigDict:
    """Every field a training run reads, with its default value (and so its type).

    Groups: ``dataset``, ``model``, ``loss``, ``optimizer`` (with ``optimizer.flip`` for the
    latent-weight-free rules), ``train`` (BPTT or online), ``schedule``, ``checkpoint``, ``mesh``; top-level ``seed``, ``batch_size`` (global, over all devices and hosts),
    ``eval_batch_size``, ``num_epochs``, ``log_every_steps``, ``eval_every_epochs``,
    ``progress``.
    """
    c = ml_collections.ConfigDict()
    c.name = "run"
    c.seed = 0

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "fashion_mnist"
    c.dataset.data_dir = config_dict.placeholder(str)  # None: the dataset's default place
    c.dataset.augment = True  # the dataset's training augmentation (crop/flip/cutout for CIFAR, ...)
    c.dataset.autoaugment = False  # CIFAR: AutoAugment's CIFAR-10 policy (Q-SNN recipe)
    c.dataset.cutout = True  # CIFAR: Cutout, 1 hole of 16 px
    c.dataset.download = False
    c.dataset.num_threads = 2  # loader threads preparing batches ahead
    c.dataset.prefetch_batches = 8

    c.model = ml_collections.ConfigDict()
    c.model.name = "small_cnn"
    c.model.variant = "agmm"  # agmm | bsnn | fp
    c.model.timesteps = 4  # T; event datasets are binned into this many frames
    c.model.time_fold = config_dict.placeholder(bool)  # None: per backend (nn.default_time_fold)
    c.model.compute_dtype = config_dict.placeholder(str)  # None: float32; "bfloat16": mixed precision convs
    c.model.remat = config_dict.placeholder(str)  # None, "block" or "conv": recompute per layer/block (models.REMAT_POLICIES)
    # nn.LIF arguments. unroll=True writes the T steps of the (elementwise) LIF recurrence out
    # for XLA, which fuses them: on this 2-core CPU, the first LIF layer of small_cnn (T=2,
    # batch 128) went from 81 ms to 4 ms fwd+bwd, the whole training step from 0.41 to 0.24 s.
    # An integer unrolls that many steps per loop iteration (1 = a rolled lax.scan).
    c.model.neuron = ml_collections.ConfigDict(
        {"tau": 0.5, "v_th": 1.0, "reset": "hard", "detach_reset": False, "surrogate": "triangle", "beta": 1.0}
    )
    c.model.neuron.unroll = config_dict.FieldReference(True, field_type=int)  # True, False or a step count

    c.loss = ml_collections.ConfigDict()
    c.loss.name = "tet"  # tet: 1/T sum_t CE(out_t, y); mean_logits: CE(mean_t out_t, y); tet_mse: BSO's
    c.loss.firing_rate_weight = 0.0  # Q-SNN's lambda (5e-3 there); 0 = off
    c.loss.firing_rate_target = 0.5

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "sgd"  # sgd | adam | adamw
    c.optimizer.learning_rate = 0.1
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = False
    c.optimizer.weight_decay = 1e-4  # conv/linear kernels only, latent binary kernels included
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.grad_clip_norm = 0.0  # 0 = no clipping
    # How binary kernels learn: "latent" (real latent weights, trained by optimizer.name through
    # the STE, AGMM) or a latent-weight-free flip rule on +-1 kernels: "bop", "bso", "t_bso"
    # (optimizer.name then trains only the full-precision rest: first conv, BN, classifier, alpha).
    c.optimizer.binary = "latent"
    c.optimizer.flip = ml_collections.ConfigDict()
    c.optimizer.flip.threshold = 5e-7  # BSO's gamma (Bop's tau); BSO paper CIFAR value
    c.optimizer.flip.rate = 1e-3  # 1 - beta1: the momentum's rate (Bop's gamma)
    c.optimizer.flip.beta2 = 1 - 1e-5  # T-BSO's second-moment coefficient
    c.optimizer.flip.eps = 1e-20  # T-BSO: sqrt(v[t] + eps) (or sqrt(v[t]) + eps, see below)
    c.optimizer.flip.eps_outside_sqrt = False  # True: the BSO code's sqrt(v[t]) + eps (use eps=1e-10)
    c.optimizer.flip.reset_momentum = False  # BSO code's reset path: zero m where a weight flips
    c.optimizer.flip.decay_every_epochs = 0  # BSO code: threshold and rate x decay_factor every N epochs (0 = off)
    c.optimizer.flip.decay_factor = 0.1

    # How gradients are computed: "bptt" (backpropagation through the T steps) or "online" (one
    # step at a time, no gradient through time, presynaptic-trace weight gradients: OTTT / BSO).
    c.train = ml_collections.ConfigDict()
    c.train.mode = "bptt"
    c.train.online_update = "per_step"  # online: optimizer after every time step (BSO) or per_batch (OTTT)
    c.train.trace_decay = config_dict.placeholder(float)  # online trace lambda; None: model.neuron.tau
    c.train.online_unroll = False  # online T-loop written out T times instead of one lax.scan (memory then grows with T)

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
    c.mesh.distributed = False  # call jax.distributed.initialize() (or set BSNN_DISTRIBUTED=1)

    c.progress = True  # progress bar on a terminal
    return c


# --------------------------------------------------------------------------------------------
# loading


def _find_repo_root(path: Path) -> Path | None:
    """The folder holding an ``experiments`` package above ``path``, if any."""
    for parent in path.resolve().parents:
        if (parent / "experiments" / "__init__.py").is_file():
            return parent
    return None


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
    root = _find_repo_root(path)
    added = root is not None and str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        module_spec = importlib.util.spec_from_file_location(f"_bsnn_config_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        if added:
            sys.path.remove(str(root))
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
            raise ConfigError(f"{source}: unknown config key {path!r}. {_known(config, key, prefix)}")
        current = config[key]
        if isinstance(current, ml_collections.ConfigDict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {path} must be a group of keys ({sorted(current)}), got {value!r}")
            _update(current, value, prefix=path + ".", source=source)
            continue
        _set(config, key, _from_json_value(value, config.get_type(key)), path, source)


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


def _known(config: ml_collections.ConfigDict, key: str, prefix: str) -> str:
    known = sorted(config.keys())
    close = difflib.get_close_matches(key, known, n=1) or [k for k in known if _is_abbreviation(key, k)][:1]
    hint = f"Did you mean '{prefix}{close[0]}'? " if close else ""
    where = f"under {prefix[:-1]!r}" if prefix else "at the top level"
    return f"{hint}Known keys {where}: {', '.join(known)}"


def _set(config: ml_collections.ConfigDict, key: str, value: Any, path: str, source: str) -> None:
    field_type = config.get_type(key)
    if value is not None and field_type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    try:
        config[key] = value  # a locked ConfigDict still lets existing fields change, type-checked
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {path} expects {_type_name(field_type)}, got {value!r} ({e})") from None


def _type_name(field_type: type) -> str:
    return getattr(field_type, "__name__", str(field_type))


# --------------------------------------------------------------------------------------------
# command-line overrides


def split_override_args(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
    """Separates ``--config.KEY=VALUE`` / ``--config.KEY VALUE`` / ``--config.KEY`` (boolean
    True) from the other arguments. Returns ``(other_args, [(KEY, VALUE or None), ...])``."""
    rest, overrides = [], []
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(OVERRIDE_PREFIX) or arg.startswith("--noconfig."):
            negated = arg.startswith("--noconfig.")
            body = arg[len("--noconfig.") :] if negated else arg[len(OVERRIDE_PREFIX) :]
            if "=" in body:
                key, value = body.split("=", 1)
            elif negated:
                key, value = body, "false"
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                key, value = body, argv[i + 1]
                i += 1
            else:
                key, value = body, None
            if not key:
                raise ConfigError(f"empty config key in {arg!r}; write --config.KEY=VALUE")
            overrides.append((key, value))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _optional(path: str) -> bool:
    """Whether the field at ``path`` is optional (None in :func:`default_config`)."""
    try:
        return _get(default_config(), path) is None
    except (KeyError, AttributeError):
        return False


def parse_value(text: str | None, field_type: type, current: Any, path: str) -> Any:
    """Coerces a command-line string to the type of the field it overrides (``none`` for an
    optional field)."""
    if text is None:
        if field_type is bool:
            return True
        raise ConfigError(f"--config.{path} needs a value: --config.{path}=VALUE")
    lowered = text.strip().lower()
    if lowered in ("none", "null") and (current is None or _optional(path)):
        return None
    try:
        if field_type is bool:
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected true or false")
        if field_type is int:
            if lowered in ("true", "false"):  # int fields that also take a bool (LIF unroll)
                return lowered == "true"
            return int(text)
        if field_type is float:
            return float(text)
        if field_type is str:
            return text
        if field_type in (tuple, list):
            value = ast.literal_eval(text)
            if not isinstance(value, (tuple, list)):
                value = (value,)
            return field_type(value)
        if field_type is type(None) or field_type is None:
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
    except (ValueError, SyntaxError) as e:
        raise ConfigError(f"--config.{path}={text!r}: expected {_type_name(field_type)} ({e})") from None
    raise ConfigError(f"--config.{path}: fields of type {_type_name(field_type)} cannot be set from the command line")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[tuple[str, str | None]]) -> ml_collections.ConfigDict:
    """Applies ``[(dotted.key, text), ...]`` to a copy of ``config`` and returns it."""
    config = from_dict(config.to_dict(), source="config")  # a copy, with the defaults' field types
    for path, text in overrides:
        node, parts = config, path.split(".")
        for depth, part in enumerate(parts):
            prefix = ".".join(parts[:depth]) + "." if depth else ""
            if part not in node:
                raise ConfigError(f"unknown config key {path!r} in --config.{path}. {_known(node, part, prefix)}")
            if depth == len(parts) - 1:
                break
            node = node[part]
            if not isinstance(node, ml_collections.ConfigDict):
                raise ConfigError(f"--config.{path}: {'.'.join(parts[: depth + 1])} is a value, not a group of keys")
        if isinstance(node[part], ml_collections.ConfigDict):
            raise ConfigError(f"--config.{path} is a group of keys ({', '.join(sorted(node[part]))}); set them one by one")
        value = parse_value(text, node.get_type(part), node[part], path)
        _set(node, part, value, path, "--config")
    return config


def load(spec: str | os.PathLike, overrides: Iterable[tuple[str, str | None]] = ()) -> ml_collections.ConfigDict:
    """Loads a config file and applies command-line overrides; see the module docstring."""
    return apply_overrides(load_config_file(spec), overrides)


# --------------------------------------------------------------------------------------------
# validation and comparison


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises a :class:`ConfigError` naming the field for any unknown name or impossible value."""
    def check(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    name = config.dataset.name
    check(
        name.startswith("npz:") or name in KNOWN_DATASETS,
        f"unknown dataset {name!r} (dataset.name); known: {', '.join(KNOWN_DATASETS)}",
    )
    check(config.model.name in models.FAMILIES, f"unknown model {config.model.name!r} (model.name); known: {', '.join(sorted(models.FAMILIES))}")
    check(config.model.variant in models.VARIANTS, f"unknown variant {config.model.variant!r} (model.variant); known: {', '.join(sorted(models.VARIANTS))}")
    check(config.loss.name in losses.LOSSES, f"unknown loss {config.loss.name!r} (loss.name); known: {', '.join(sorted(losses.LOSSES))}")
    check(config.optimizer.name in optim.OPTIMIZERS, f"unknown optimizer {config.optimizer.name!r} (optimizer.name); known: {', '.join(optim.OPTIMIZERS)}")
    check(config.optimizer.binary in optim.BINARY_TRAINING, f"unknown binary training {config.optimizer.binary!r} (optimizer.binary); known: {', '.join(optim.BINARY_TRAINING)}")
    check(config.train.mode in TRAIN_MODES, f"unknown training mode {config.train.mode!r} (train.mode); known: {', '.join(TRAIN_MODES)}")
    check(config.train.online_update in ONLINE_UPDATES, f"unknown online update {config.train.online_update!r} (train.online_update); known: {', '.join(ONLINE_UPDATES)}")
    if config.optimizer.binary != "latent":
        check(config.model.variant != "fp", f"optimizer.binary={config.optimizer.binary!r} flips binary kernels, but model.variant='fp' has none; use variant bsnn or agmm")
        flip = config.optimizer.flip
        check(flip.threshold >= 0, f"optimizer.flip.threshold must be >= 0, got {flip.threshold}")
        check(0 < flip.rate <= 1, f"optimizer.flip.rate (1 - beta1) must be in (0, 1], got {flip.rate}")
        check(0 <= flip.beta2 < 1, f"optimizer.flip.beta2 must be in [0, 1), got {flip.beta2}")
        check(flip.decay_every_epochs >= 0, f"optimizer.flip.decay_every_epochs must be >= 0, got {flip.decay_every_epochs}")
    if config.optimizer.binary == "t_bso":
        check(
            config.train.mode == "online" and config.train.online_update == "per_step",
            "optimizer.binary='t_bso' keeps one second moment per time step, so it needs online training with an "
            "update per step: --config.train.mode=online --config.train.online_update=per_step",
        )
    if config.train.mode == "online":
        check(
            not config.loss.firing_rate_weight,
            "loss.firing_rate_weight needs the whole sequence's spikes, which online training does not keep; set it to 0 or use train.mode=bptt",
        )
    check(config.schedule.name in optim.SCHEDULES, f"unknown schedule {config.schedule.name!r} (schedule.name); known: {', '.join(optim.SCHEDULES)}")
    for key in ("model.timesteps", "batch_size", "eval_batch_size", "num_epochs", "log_every_steps", "eval_every_epochs"):
        value = _get(config, key)
        check(isinstance(value, int) and value >= 1, f"{key} must be an integer >= 1, got {value!r}")
    check(config.checkpoint.keep >= 1, f"checkpoint.keep must be >= 1, got {config.checkpoint.keep}")
    check(config.checkpoint.every_steps >= 0, f"checkpoint.every_steps must be >= 0, got {config.checkpoint.every_steps}")
    check(config.optimizer.learning_rate > 0, f"optimizer.learning_rate must be > 0, got {config.optimizer.learning_rate}")
    check(config.optimizer.weight_decay >= 0, f"optimizer.weight_decay must be >= 0, got {config.optimizer.weight_decay}")
    check(0 <= config.schedule.warmup_epochs < config.num_epochs, f"schedule.warmup_epochs must be in [0, num_epochs={config.num_epochs}), got {config.schedule.warmup_epochs}")
    check(config.mesh.num_devices >= 0, f"mesh.num_devices must be >= 0 (0 = all), got {config.mesh.num_devices}")


def _get(config: ml_collections.ConfigDict, path: str) -> Any:
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
