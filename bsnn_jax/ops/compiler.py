"""The XLA compiler options of every program the library jits, chosen per backend by measurement.

XLA:CPU (jax 0.10) hands dots, convolutions and reductions to YNNPACK by default. On the 2-core
AVX-512 machine of ``benchmarks/results/bench.md`` YNNPACK's convolutions ran the reference
training step's 3x3 convolutions (forward, input and weight gradients) about 1.9x slower than
XLA's own Eigen kernels, while XLA's own column reductions (BatchNorm statistics over
``[N, H, W]``) were about 2x slower than YNNPACK's. So on CPU the library keeps YNNPACK for dots
and reductions and gives convolutions back to Eigen. ``bsnn bench`` measures both settings in one
run (workloads ``reference_snn_t4`` and ``reference_snn_t4_xla_default``) so the choice can be
re-checked on any machine or JAX release.

The options apply to the programs ``bsnn_jax`` jits itself (training, evaluation, export,
analysis). Code that wraps the library's modules in its own ``jax.jit`` gets the same behaviour
with ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE``.
A user's own setting of that flag in ``XLA_FLAGS`` always wins, and ``BSNN_JAX_XLA_DEFAULTS=1``
turns the library's choice off.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax

XLA_DEFAULTS_ENV = "BSNN_JAX_XLA_DEFAULTS"
CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


@functools.cache
def _accepted(options: tuple[tuple[str, str], ...]) -> bool:
    """Whether this XLA knows ``options`` (older or newer releases may rename or drop them)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:
        return False
    return True


def compiler_options() -> dict[str, str] | None:
    """The options ``jit`` passes to XLA on the default backend, or ``None`` for XLA's defaults
    (other backends, an XLA that does not know them, ``BSNN_JAX_XLA_DEFAULTS=1``, or the user
    setting them in ``XLA_FLAGS``)."""
    if os.environ.get(XLA_DEFAULTS_ENV, "0") not in ("", "0") or jax.default_backend() != "cpu":
        return None
    user_flags = os.environ.get("XLA_FLAGS", "")
    options = {name: value for name, value in CPU_OPTIONS.items() if f"--{name}" not in user_flags}
    if not options or not _accepted(tuple(sorted(options.items()))):
        return None
    return options


class _Jitted:
    """A jitted function compiled with :func:`compiler_options` when called at top level, and as a
    plain ``jax.jit`` inside another transformation (JAX accepts compiler options only on the
    outermost jit; inside it the caller's options apply). ``lower``, ``trace`` and friends are
    those of the top-level version."""

    def __init__(self, fun: Callable, kwargs: dict[str, Any]):
        self._nested = jax.jit(fun, **kwargs)
        options = compiler_options()
        self._top_level = self._nested if options is None else jax.jit(fun, compiler_options=options, **kwargs)
        functools.update_wrapper(self, fun)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
            return self._nested(*args, **kwargs)
        try:
            return self._top_level(*args, **kwargs)
        except ValueError as error:  # concrete arguments, but called while the caller traces
            if "can only be passed to top-level" not in str(error):
                raise
        return self._nested(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._top_level, name)


def jit(fun: Callable, **kwargs: Any) -> Any:
    """``jax.jit(fun, **kwargs)`` compiled with :func:`compiler_options` at top level; usable inside
    the caller's own ``jit``, ``grad`` or ``vmap`` like any jitted function."""
    return _Jitted(fun, kwargs)
