"""Pure ``init`` / ``apply`` functions of a model, for code that is not written with Flax NNX.

An NNX module holds its arrays; JAX transformations want them as arguments. ``functional(model)``
splits the model once into static graph definitions (BatchNorm in training and in evaluation
mode) and gives two pure functions of array trees:

- ``init(rng, x) -> (params, state)``: every ``nnx.Param`` (binary kernels included) and every
  other variable (BatchNorm running statistics, RNG counters);
- ``apply(params, state, x, *, train, rng=None) -> (logits, new_state)``.

The module is rebuilt with ``nnx.merge`` *inside* the traced function and its new state is
returned rather than written back, so ``jax.jit(jax.grad(...))``, ``jax.vmap`` and other
frameworks' models can call it; writing into a module created outside the trace is what raises
"Cannot mutate BatchStat from a different trace level".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from bsnn_jax.models.registry import create

Builder = Callable[[nnx.Rngs], nnx.Module]


def eval_view(model: nnx.Module) -> nnx.Module:
    """``model`` with BatchNorm on running averages and dropout off (shares its arrays)."""
    return nnx.view(model, use_running_average=True, deterministic=True, raise_if_not_found=False)


@dataclasses.dataclass(frozen=True)
class Functional:
    """The pure functions of one model architecture (see the module docstring).

    Attributes:
      train_graph, eval_graph: the static halves of the split model, BatchNorm on batch
        statistics (train) or on running averages (eval).
      build: makes the module from ``nnx.Rngs`` (``init`` draws fresh parameters), or None when
        made from a module: ``init`` then returns that module's arrays.
      arrays: the ``(params, state)`` of the module it was made from, if any.
    """

    train_graph: nnx.GraphDef
    eval_graph: nnx.GraphDef
    build: Builder | None = None
    arrays: tuple[Any, Any] | None = None

    def init(self, rng: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        """``(params, state)``: pure pytrees of arrays (``params`` are the trainable ones).

        Args:
          rng: a ``jax.random.key``; the parameters' initialisation (unused when made from a
            module, whose arrays are returned).
          x: an example input (``[B, H, W, C]`` images or ``[T, B, H, W, C]`` frames); only its
            shape is used, to check the model takes it (shape-only tracing, no computation).
        """
        if self.build is None:
            params, state = self.arrays
        else:
            _, params, state = _split(self.build(nnx.Rngs(rng)))
        jax.eval_shape(lambda p, s, x: self.apply(p, s, x, train=False), params, state, x)
        return params, state

    def apply(self, params: Any, state: Any, x: jax.Array, *, train: bool, rng: jax.Array | None = None) -> tuple[jax.Array, Any]:
        r"""The forward pass: ``(logits [T, B, K], new_state)``.

        In training mode each BatchNorm normalises with the statistics of the batch (over T and
        B) and updates its running averages, $\hat\mu \leftarrow (1 - m)\,\hat\mu + m\,\mu_B$
        (likewise the variance); in evaluation mode it uses $\hat\mu$, $\hat\sigma^2$.

        Args:
          params, state: the trees from :meth:`init` (or trained ones).
          x: images ``[B, H, W, C]`` (repeated over T) or frames ``[T, B, H, W, C]``.
          train: BatchNorm normalises with the batch statistics and ``new_state`` holds the
            updated running averages (``m <- (1 - momentum) m + momentum * batch stat``);
            otherwise it uses the running averages and ``new_state`` is ``state``.
          rng: reseeds the model's random streams (``nnx.Rngs`` of stochastic layers, e.g.
            ``nnx.Dropout`` in a model of your own); the built-in families are deterministic.
        """
        model = nnx.merge(self.train_graph if train else self.eval_graph, params, state)
        if rng is not None:
            tags = sorted({node.tag for _, node in nnx.iter_graph(model) if isinstance(node, nnx.RngStream)})
            nnx.reseed(model, **{tag: jax.random.fold_in(rng, i) for i, tag in enumerate(tags)})
        logits = model(x)
        if not train:
            return logits, state
        return logits, nnx.as_pure(nnx.state(model, nnx.Not(nnx.Param)))


def _split(model: nnx.Module) -> tuple[nnx.GraphDef, Any, Any]:
    graph, params, state = nnx.split(model, nnx.Param, ...)
    return graph, nnx.as_pure(params), nnx.as_pure(state)


def functional(model: nnx.Module | str | Builder, **create_kwargs: Any) -> Functional:
    """Pure ``init``/``apply`` functions of a model.

    Args:
      model: a family name for :func:`bsnn_jax.models.create` (``create_kwargs`` go to it,
        without ``rngs``), a function ``rngs -> module`` for a model of your own, or a built
        module (``init`` then returns a copy of its current arrays).

    Returns:
      A :class:`Functional` with ``init(rng, x)`` and ``apply(params, state, x, *, train, rng=None)``.

    Example::

        fn = models.functional("small_cnn", variant="agmm", timesteps=2)
        params, state = fn.init(jax.random.key(0), images)
        grads, state = jax.jit(jax.grad(loss, has_aux=True))(params, state, images, labels)
    """
    if isinstance(model, str):
        name = model
        model = lambda rngs: create(name, rngs=rngs, **create_kwargs)
    elif create_kwargs:
        raise TypeError(f"keyword arguments {sorted(create_kwargs)} are for a model given by name, not {type(model).__name__}")
    if isinstance(model, nnx.Module):
        graph, params, state = _split(model)
        return Functional(graph, nnx.graphdef(eval_view(model)), arrays=jax.tree.map(lambda a: a.copy(), (params, state)))
    abstract = nnx.eval_shape(lambda: model(nnx.Rngs(0)))
    return Functional(nnx.graphdef(abstract), nnx.graphdef(eval_view(abstract)), build=model)
