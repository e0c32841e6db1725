"""The 1-bit layout of binary kernels in an export file.

A binary kernel of shape ``[kh, kw, C_in, C_out]`` (conv, Flax's HWIO) or ``[F_in, F_out]``
(dense) is stored as its signs, **output-channel major**: transposed to ``[C_out, ...rest]``
and flattened row-major, so the ``n = prod(rest)`` weights of output channel ``o`` are bits
``o*n .. o*n + n - 1`` (each channel's weights contiguous, as popcount kernels read them).
Bit ``1`` is ``+1`` and bit ``0`` is ``-1``, with ``sign(0) = +1`` as in ``ops.sign_ste``.
Bits fill bytes least-significant first (``np.packbits(..., bitorder="little")``); the last
byte of a tensor is zero-padded, so a kernel of N weights takes ``ceil(N / 8)`` bytes.

Both directions exist in numpy (``pack_signs``/``unpack_signs``, for files and tests) and in
JAX (``pack_signs_jax``/``unpack_signs_jax``, traceable, so the packed network unpacks its
kernels inside its jitted forward pass and holds 1 bit per weight in memory).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

BITORDER = "little"


def packed_nbytes(shape: tuple[int, ...]) -> int:
    """Bytes of a packed kernel of ``shape``: ``ceil(prod(shape) / 8)``."""
    return (math.prod(shape) + 7) // 8


def _output_major(w):
    """``[..., C_out] -> [C_out, ...]`` (the layout's order of the weights)."""
    return w.transpose((w.ndim - 1,) + tuple(range(w.ndim - 1)))


def _output_last(w):
    """Inverse of ``_output_major``."""
    return w.transpose(tuple(range(1, w.ndim)) + (0,))


def _check_kernel_shape(shape: tuple[int, ...]) -> None:
    if len(shape) < 2:
        raise ValueError(f"a binary kernel has the output channel last and ndim >= 2, got shape {shape}")


def pack_signs(w: np.ndarray) -> np.ndarray:
    """The sign bits of kernel ``w`` (output channel last), ``uint8 [ceil(N / 8)]``; bit 1 = ``w >= 0``."""
    w = np.asarray(w)
    _check_kernel_shape(w.shape)
    return np.packbits((_output_major(w) >= 0).reshape(-1), bitorder=BITORDER)


def unpack_signs(bits: np.ndarray, shape: tuple[int, ...], dtype=np.int8) -> np.ndarray:
    """Inverse of ``pack_signs``: the +-1 kernel of ``shape`` (output channel last)."""
    shape = tuple(shape)
    _check_kernel_shape(shape)
    if bits.shape != (packed_nbytes(shape),):
        raise ValueError(f"a kernel of shape {shape} packs into {packed_nbytes(shape)} bytes, got {bits.shape}")
    flat = np.unpackbits(bits, count=math.prod(shape), bitorder=BITORDER)
    signs = (2 * flat.astype(np.int8) - 1).astype(dtype)
    return _output_last(signs.reshape((shape[-1],) + shape[:-1]))


def pack_signs_jax(w: jax.Array) -> jax.Array:
    """``pack_signs`` in JAX (traceable: the exporter runs under ``nnx.eval_shape`` too)."""
    _check_kernel_shape(w.shape)
    return jnp.packbits((_output_major(w) >= 0).reshape(-1), bitorder=BITORDER)


def unpack_signs_jax(bits: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """``unpack_signs`` in JAX: the +-1 kernel of ``shape`` in ``dtype``."""
    shape = tuple(shape)
    flat = jnp.unpackbits(bits, count=math.prod(shape), bitorder=BITORDER)
    signs = 2 * flat.astype(dtype) - 1
    return _output_last(signs.reshape((shape[-1],) + shape[:-1]))
