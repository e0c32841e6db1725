"""Named experiment configs: one module per paper table, its rows picked by name.

- :mod:`~bsnn_jax.configs.agmm_table1`: AGMM Table 1 rows (``cifar10_resnet19_t2``, ...) and
  their vanilla-BSNN and FP-SNN twins (``..._bsnn``, ``..._fp``).
- :mod:`~bsnn_jax.configs.bso_table2`: BSO Table 2 rows (``cifar10_vgg11_tbso_t2``, ...).
- :mod:`~bsnn_jax.configs.builtin`: ``demo``, ``fashion_agmm``, ``fashion_tbso`` on the built-in
  Fashion-MNIST.

Example::

    from bsnn_jax import configs

    configs.names()                                   # every name, sorted
    c = configs.get("cifar10_resnet19_t2_bsnn")       # a locked ml_collections.ConfigDict
    c = configs.load("demo", [("num_epochs", "3")])   # what `bsnn train --config demo --config.num_epochs=3` trains

``bsnn train --config`` takes a name, a config file ``path.py[:arg]`` or a run's ``config.json``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable

import ml_collections

from bsnn_jax.configs import agmm_table1, bso_table2, builtin
from bsnn_jax.train.config import ConfigError, load_config_file
from bsnn_jax.train.overrides import Override, apply_overrides

_TABLES = (agmm_table1, bso_table2, builtin)
_REGISTRY: dict[str, Callable[[], ml_collections.ConfigDict]] = {name: make for table in _TABLES for name, make in table.CONFIGS.items()}
_FILE_SUFFIXES = (".py", ".json")


def names() -> list[str]:
    """Every config name, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> ml_collections.ConfigDict:
    """The config called ``name`` (one of :func:`names`), locked: fields can change, not be added.

    Raises:
      ConfigError: unknown ``name``; the message suggests the closest names and lists them all.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"Did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ConfigError(
            f"unknown config {name!r}. {hint}Known configs: {', '.join(names())}; "
            "or give a config file: PATH.py[:arg] or a run's config.json"
        )
    return _REGISTRY[name]().lock()


def is_file_spec(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a file (``path.py[:arg]``, ``.json``, a path) rather than a config name."""
    text = str(spec)
    return isinstance(spec, os.PathLike) or text.endswith(_FILE_SUFFIXES) or ".py:" in text or os.sep in text


def load(spec: str | os.PathLike, overrides: Iterable[Override] = ()) -> ml_collections.ConfigDict:
    """The config ``spec`` names, with command-line overrides applied.

    Args:
      spec: a name of :func:`names`, a config file ``path.py`` (its ``get_config()``) or
        ``path.py:arg`` (``get_config("arg")``), or a ``config.json`` written by a run.
      overrides: ``[(dotted.key, text), ...]`` as ``--config.KEY=VALUE`` gives them
        (:func:`bsnn_jax.train.overrides.split_override_args`).

    Raises:
      ConfigError: unknown name, missing or broken file, unknown key or a value of the wrong type.
    """
    config = load_config_file(spec) if is_file_spec(spec) else get(str(spec))
    return apply_overrides(config, overrides)


__all__ = ["agmm_table1", "bso_table2", "builtin", "get", "is_file_spec", "load", "names"]
