"""Random test inputs drawn with NumPy. ``jax.random`` compiles its threefry kernel for every new
shape (0.7-1.1 s each on a 2-core CPU, in every test process), which made drawing the inputs most
of the time of tests parametrized over shapes; the library's own randomness (parameter init,
dropout, encoders) still goes through ``jax.random``."""

import jax.numpy as jnp
import numpy as np


def normal(seed: int, shape, dtype=jnp.float32) -> jnp.ndarray:
    """Standard normal samples of ``shape``, reproducible from ``seed``."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def uniform(seed: int, shape, low: float = 0.0, high: float = 1.0, dtype=jnp.float32) -> jnp.ndarray:
    """Uniform samples in ``[low, high)`` of ``shape``, reproducible from ``seed``."""
    return jnp.asarray(np.random.default_rng(seed).uniform(low, high, shape), dtype)


def integers(seed: int, shape, low: int, high: int) -> np.ndarray:
    """Integers in ``[low, high)`` of ``shape``, reproducible from ``seed``."""
    return np.random.default_rng(seed).integers(low, high, shape)
