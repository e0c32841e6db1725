"""Command-line overrides of a config: ``--config.KEY=VALUE``, with ``ml_collections.config_flags``
syntax.

``--config.optimizer.learning_rate=0.05``, ``--config.num_epochs 3``, a bare ``--config.progress``
(True) and ``--noconfig.progress`` (False); nested keys with dots; each value coerced to the type of
the field it replaces (``true``/``false``, ``yes``/``no``, ... for booleans, Python literals for
tuples, ``none`` for an optional field). An unknown key is a :class:`~bsnn_jax.train.config.ConfigError`
that suggests the closest key and lists the keys of its level.

Why not ``config_flags`` itself: it is built on ``absl.flags``, which registers one flag per
overridden field in a process-global ``FlagValues`` and reads ``sys.argv`` itself. That does not
fit ``bsnn``: argparse subcommands own the command line (``bsnn train --workdir ...``), ``cli.main``
is called many times in one process (tests, notebooks) where a second registration is a
``DuplicateFlagError``, ``--config`` may be a name from ``bsnn_jax.configs`` or be absent (resume from
the run's ``config.json``) rather than a file loaded at flag-parsing time, and its errors name
neither the closest key nor the keys that exist.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import Any

import ml_collections

from bsnn_jax.train.config import ConfigError, default_config, from_dict, get_field, known_keys, set_field, type_name

PREFIX = "--config."
NEGATED_PREFIX = "--noconfig."
Override = tuple[str, str | None]  # (dotted key, its text; None for a bare --config.KEY)

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def split_override_args(argv: Sequence[str]) -> tuple[list[str], list[Override]]:
    """Separates ``--config.KEY=VALUE`` / ``--config.KEY VALUE`` / ``--config.KEY`` (boolean
    True) / ``--noconfig.KEY`` (False) from the other arguments.

    Returns:
      ``(other_args, [(KEY, VALUE or None), ...])``, both in command-line order.
    """
    rest, overrides = [], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith((PREFIX, NEGATED_PREFIX)):
            rest.append(arg)
        else:
            negated = arg.startswith(NEGATED_PREFIX)
            body = arg[len(NEGATED_PREFIX if negated else PREFIX) :]
            if "=" in body:
                key, value = body.split("=", 1)
            elif negated:
                key, value = body, "false"
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                key, value = body, args[i + 1]
                i += 1
            else:
                key, value = body, None
            if not key:
                raise ConfigError(f"empty config key in {arg!r}; write --config.KEY=VALUE")
            overrides.append((key, value))
        i += 1
    return rest, overrides


def _optional(path: str) -> bool:
    """Whether the field at ``path`` is optional: None in :func:`default_config`."""
    try:
        return get_field(default_config(), path) is None
    except (KeyError, AttributeError):
        return False


def _coerce(text: str, field_type: type) -> Any:
    """``text`` as a ``field_type``: ValueError or SyntaxError if it is not one, TypeError for a
    type the command line cannot express."""
    lowered = text.strip().lower()
    if field_type is bool:
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError("expected true or false")
    if field_type is int:
        if lowered in ("true", "false"):  # int fields that also take a bool (the LIF's unroll)
            return lowered == "true"
        return int(text)
    if field_type is float:
        return float(text)
    if field_type is str:
        return text
    if field_type in (tuple, list):
        value = ast.literal_eval(text)
        return field_type(value if isinstance(value, (tuple, list)) else (value,))
    if field_type in (type(None), None):  # a field without a type: a Python literal, else the text
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    raise TypeError(f"fields of type {type_name(field_type)} cannot be set from the command line")


def parse_value(text: str | None, field_type: type, current: Any, path: str) -> Any:
    """Coerces a command-line string to the type of the field at ``path`` that it overrides.

    Args:
      text: the value as written, or None for a bare ``--config.KEY`` (True for a boolean).
      field_type: the field's type (``ConfigDict.get_type``).
      current: the field's value now; ``none`` may replace it when it or its default is None.
      path: the dotted key, for messages.

    Raises:
      ConfigError: the text is not a value of that type.
    """
    if text is None:
        if field_type is bool:
            return True
        raise ConfigError(f"--config.{path} needs a value: --config.{path}=VALUE")
    if text.strip().lower() in ("none", "null") and (current is None or _optional(path)):
        return None
    try:
        return _coerce(text, field_type)
    except (ValueError, SyntaxError) as e:
        raise ConfigError(f"--config.{path}={text!r}: expected {type_name(field_type)} ({e})") from None
    except TypeError as e:
        raise ConfigError(f"--config.{path}: {e}") from None


def _parent(config: ml_collections.ConfigDict, path: str) -> tuple[ml_collections.ConfigDict, str]:
    """The group holding the field at ``path``, and the field's key in it."""
    node, parts = config, path.split(".")
    for depth, part in enumerate(parts):
        if part not in node:
            prefix = ".".join(parts[:depth]) + "." if depth else ""
            raise ConfigError(f"unknown config key {path!r} in --config.{path}. {known_keys(node, part, prefix)}")
        if depth == len(parts) - 1:
            break
        node = node[part]
        if not isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(f"--config.{path}: {'.'.join(parts[: depth + 1])} is a value, not a group of keys")
    return node, parts[-1]


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[Override]) -> ml_collections.ConfigDict:
    """Applies ``[(dotted.key, text), ...]`` to a copy of ``config`` and returns it.

    The copy is rebased on :func:`default_config`, so every field has the type of its default.

    Raises:
      ConfigError: an unknown key, a group of keys set as one value, or a value of the wrong type.
    """
    config = from_dict(config.to_dict(), source="config")
    for path, text in overrides:
        node, key = _parent(config, path)
        if isinstance(node[key], ml_collections.ConfigDict):
            raise ConfigError(f"--config.{path} is a group of keys ({', '.join(sorted(node[key]))}); set them one by one")
        value = parse_value(text, node.get_type(key), node[key], path)
        set_field(node, key, value, path=path, source="--config")
    return config
