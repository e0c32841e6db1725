"""Route binary kernels to a flip optimizer and everything else to another transformation.

Which leaves are binary is decided once, from their paths: the paths of the model's
``BinaryParam`` variables, of the ``BinaryParam`` leaves of an ``nnx.State``, or of the True
leaves of a pytree of bools. A path matches a leaf when it is a prefix of the leaf's path, so
the same labels fit ``nnx.state(model, nnx.Param)`` (which ``nnx.Optimizer`` hands to ``init``,
Variables included), its ``nnx.as_pure`` arrays (what ``update`` gets) and
``nnx.to_pure_dict`` dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from bsnn_jax.nn import BinaryParam
from bsnn_jax.ops import sign_ste

BINARY, FP = "binary", "fp"

Path = tuple[Any, ...]


def _keys(path: tuple[Any, ...]) -> Path:
    """A key path as plain names and indices, so DictKey/GetAttrKey/SequenceKey paths compare."""
    return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def _is_bool(x: Any) -> bool:
    return np.ndim(x) == 0 and np.asarray(x).dtype == np.bool_


def _binary_paths(is_binary: Any) -> list[Path]:
    if isinstance(is_binary, nnx.Module):
        is_binary = nnx.state(is_binary, BinaryParam)
    leaves = jax.tree_util.tree_leaves_with_path(is_binary, is_leaf=_is_variable)
    if any(_is_variable(x) for _, x in leaves):
        return [_keys(p) for p, x in leaves if isinstance(x, BinaryParam)]
    for p, x in leaves:
        if not _is_bool(x):
            raise TypeError(
                "is_binary must be an nnx.Module, an nnx.State of Variables, or a pytree of bools; "
                f"got {type(x).__name__} at {jax.tree_util.keystr(p)}"
            )
    return [_keys(p) for p, x in leaves if bool(x)]


def binary_labels(is_binary: Any) -> Callable[[optax.Params], optax.Params]:
    """A label function for ``optax.partition``: ``"binary"`` on binary kernels, ``"fp"`` elsewhere.

    Args:
      is_binary: an ``nnx.Module`` (its ``BinaryParam`` variables are binary), an ``nnx.State``
        or other pytree of ``nnx.Variable`` (its ``BinaryParam`` leaves), or a pytree of bools
        with the structure of (a prefix of) the parameters (True = binary).

    Returns:
      ``labels(tree)``: the tree's structure with a label per leaf (per Variable, Variables
      counted as leaves). It raises ``ValueError`` if a binary path is not in the tree, so a
      binary kernel can never fall silently to the full-precision optimizer.

    Example:
      >>> import jax.numpy as jnp
      >>> from bsnn_jax.optim import binary_labels
      >>> params = {"conv": {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.zeros(4)}}
      >>> binary_labels({"conv": {"kernel": True, "bias": False}})(params)
      {'conv': {'bias': 'fp', 'kernel': 'binary'}}
    """
    paths = _binary_paths(is_binary)
    if not paths:
        raise ValueError("no binary kernels found (no BinaryParam, or no True leaf in the mask)")

    def labels(tree):
        leaf_paths = [_keys(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree, is_leaf=_is_variable)]
        missing = [p for p in paths if not any(q[: len(p)] == p for q in leaf_paths)]
        if missing:
            raise ValueError(
                f"binary kernels {missing} are not in the parameter tree; build the labels from the same parameters the optimizer sees"
            )

        def label(path, _):
            keys = _keys(path)
            return BINARY if any(keys[: len(p)] == p for p in paths) else FP

        return jax.tree_util.tree_map_with_path(label, tree, is_leaf=_is_variable)

    return labels


def binary_partition(
    is_binary: Any,
    *,
    binary: optax.GradientTransformation,
    fp: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
    """``optax.partition`` of binary kernels to ``binary`` and every other leaf to ``fp``.

    Extra keyword arguments of ``update`` reach both sides: ``optax.partition`` passes them on,
    and wraps a plain ``GradientTransformation`` (such as ``optax.sgd``) so that it ignores
    them. So ``update(grads, state, params, t=t)`` gives T-BSO its time step.

    Args:
      is_binary: which leaves are binary, as for :func:`binary_labels`.
      binary: the transformation of the binary kernels, e.g. :func:`t_bso` or :func:`bso`.
      fp: the transformation of the rest, e.g. :func:`fp_sgd` or any optax optimizer.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is an ``optax.PartitionState``
      with inner states ``"binary"`` and ``"fp"``.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from bsnn_jax.optim import binary_partition, t_bso
      >>> params = {"conv": jnp.ones((3, 3, 2, 4)), "bn_scale": jnp.ones(4)}
      >>> tx = binary_partition({"conv": True, "bn_scale": False},
      ...                       binary=t_bso(timesteps=2), fp=optax.sgd(0.1))
      >>> state = tx.init(params)
      >>> grads = {"conv": jnp.full((3, 3, 2, 4), 0.1), "bn_scale": jnp.ones(4)}
      >>> updates, state = tx.update(grads, state, params, t=0)
      >>> updates["bn_scale"], bool((updates["conv"] == -2).all())
      (Array([-0.1, -0.1, -0.1, -0.1], dtype=float32), True)
    """
    return optax.partition({BINARY: binary, FP: fp}, binary_labels(is_binary))


def sign_binary_kernels(model: nnx.Module) -> None:
    """Set every ``BinaryParam`` of ``model`` to ``sign(w)`` in {-1, +1} (``sign(0) = +1``), in place.

    The start of latent-weight-free training (``nn.latent_free`` does it on its copy): the BSO
    code keeps the kaiming init and signs it inside its first step (it writes ``sign(flip * w)``);
    flip optimizers here keep ``|w|``, so sign first. For +-gamma kernels instead, ``nnx.update(model, jax.tree.map(ops.binarize,
    nnx.state(model, BinaryParam)))``.
    """
    nnx.update(model, jax.tree.map(sign_ste, nnx.state(model, BinaryParam)))


def sign_kernels(params: optax.Params, is_binary: Any) -> optax.Params:
    """``params`` with the binary leaves replaced by ``sign(w)`` (``sign(0) = +1``), functionally.

    Args:
      params: a pytree of arrays or of ``nnx.Variable``.
      is_binary: which leaves are binary, as for :func:`binary_labels`.

    Example:
      >>> import jax.numpy as jnp
      >>> from bsnn_jax.optim import sign_kernels
      >>> sign_kernels({"k": jnp.array([[0.3, 0.0], [-2.0, 1e-9]]), "b": jnp.array([0.5])},
      ...              {"k": True, "b": False})
      {'b': Array([0.5], dtype=float32), 'k': Array([[ 1.,  1.],
             [-1.,  1.]], dtype=float32)}
    """
    labels = binary_labels(is_binary)(params)
    return jax.tree.map(lambda label, w: jax.tree.map(sign_ste, w) if label == BINARY else w, labels, params)
