"""The networks as Flax Linen modules, with every trainable parameter in ``params``.

Flax's ``nnx.bridge.to_linen`` files each variable under the collection named after its type,
so the binary kernels (``nn.BinaryParam``) would land in a ``BinaryParam`` collection that a
Linen train state optimising ``variables['params']`` never updates: the 92,160 binary weights
of the demo net's 155,630 parameters. :func:`to_linen` files every ``nnx.Param``, binary or not, under ``params``
(BatchNorm statistics stay in ``batch_stats``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx
from flax.nnx import traversals, variablelib
from flax.nnx.bridge import ToLinen as _FlaxToLinen

from bsnn_jax.models.functional import eval_view
from bsnn_jax.models.registry import create
from bsnn_jax.nn import BinaryParam


class Trainable(nnx.Module):
    """A network with a ``train`` flag at call time, as Linen modules take it."""

    def __init__(self, build: Callable[..., nnx.Module], *, rngs: nnx.Rngs, **kwargs: Any):
        self.net = build(rngs=rngs, **kwargs)

    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        return (self.net if train else eval_view(self.net))(x)


class ParamsToLinen(_FlaxToLinen):
    """``nnx.bridge.ToLinen`` that files every ``nnx.Param`` subclass under ``params``."""

    def _update_variables(self, module: nnx.Module) -> None:
        groups: dict[str, list] = {}
        for path, var in nnx.to_flat_state(nnx.state(module, nnx.Not(nnx.RngState))):
            name = "params" if isinstance(var, nnx.Param) else variablelib.variable_name_from_type(type(var), allow_register=True)
            groups.setdefault(name, []).append((path, var))
        for name, flat in groups.items():
            if not self.is_mutable_collection(name):
                continue
            tree = jax.tree.map(self._to_linen, traversals.unflatten_mapping(flat), is_leaf=lambda v: isinstance(v, nnx.Variable))
            for key, value in tree.items():
                self.put_variable(name, key, value)

    def _to_linen(self, var: nnx.Variable) -> Any:
        # A BinaryParam boxed with its type would not convert back to an nnx.Param of 'params'.
        if isinstance(var, BinaryParam) or self.metadata_fn is None:
            return var.get_value()
        return self.metadata_fn(var)


def to_linen(model: str | Callable[..., nnx.Module], /, **kwargs: Any) -> ParamsToLinen:
    """A Linen module of a network: ``apply(variables, x, train=...)``.

    Args:
      model: a family name for :func:`bsnn_jax.models.create`, or a function
        ``(rngs=..., **kwargs) -> nnx.Module`` for a model of your own.
      kwargs: its keyword arguments (``variant``, ``timesteps``, ``num_classes``, ...).

    Returns:
      A Linen module whose ``init(rng, x)`` gives ``{'params': ..., 'batch_stats': ...}``;
      ``apply(variables, x, train=True, mutable=['batch_stats'])`` trains (BatchNorm on batch
      statistics), ``apply(variables, x, train=False)`` evaluates.

    Example::

        net = models.to_linen("small_cnn", variant="agmm", timesteps=2)
        variables = net.init(jax.random.key(0), images)
        logits, updates = net.apply(variables, images, train=True, mutable=["batch_stats"])
    """
    build = (lambda **kw: create(model, **kw)) if isinstance(model, str) else model
    return ParamsToLinen(Trainable, args=(build,), kwargs=nnx.bridge.wrappers.FrozenDict(kwargs))
