"""ops.compiler: which XLA options the library's jits use, that XLA applies them (convolutions on
Eigen, reductions on YNNPACK), that they leave the numbers alone, and how a user overrides them."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax.ops import compiler, conv2d

FLAG = "xla_cpu_experimental_ynn_fusion_type"


def conv_bn_loss(x, w):
    """A conv followed by batch statistics, as in every layer of the networks."""
    y = conv2d(x, w, 1, 1)
    mean = jnp.mean(y, axis=(0, 1, 2))
    var = jnp.var(y, axis=(0, 1, 2))
    return jnp.sum(((y - mean) / jnp.sqrt(var + 1e-5)) ** 3)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((4, 8, 8, 16)) < 0.3, jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 16, 32)), jnp.float32)
    return x, w


def ynn_fused_ops(compiled_text: str) -> tuple[int, int]:
    """(convolutions, reductions) that XLA placed inside YNNPACK fusions."""
    ynn_computations = set(re.findall(r"calls=%([\w.\-]+),[^\n]*__ynn_fusion", compiled_text))
    convolutions = reductions = 0
    for block in re.split(r"\n(?=\S)", compiled_text):
        name = re.match(r"(?:ENTRY )?%([\w.\-]+)", block)
        if name and name.group(1) in ynn_computations:
            convolutions += block.count(" convolution(")
            reductions += block.count(" reduce(")
    return convolutions, reductions


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(compiler.XLA_DEFAULTS_ENV, raising=False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    return monkeypatch


def test_cpu_gets_the_library_options(clean_env):
    assert jax.default_backend() == "cpu"
    assert compiler.compiler_options() == compiler.CPU_OPTIONS


def test_opt_out_and_user_flags_win(clean_env):
    clean_env.setenv(compiler.XLA_DEFAULTS_ENV, "1")
    assert compiler.compiler_options() is None
    clean_env.setenv(compiler.XLA_DEFAULTS_ENV, "0")
    assert compiler.compiler_options() == compiler.CPU_OPTIONS
    clean_env.setenv("XLA_FLAGS", f"--{FLAG}=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION")
    assert compiler.compiler_options() is None


def test_unknown_option_falls_back_to_xla_defaults(clean_env):
    clean_env.setattr(compiler, "CPU_OPTIONS", {"xla_cpu_option_from_another_release": "1"})
    assert compiler.compiler_options() is None


def test_convolutions_leave_ynnpack_and_reductions_stay(clean_env, inputs):
    grad = jax.grad(conv_bn_loss, argnums=(0, 1))
    ours = compiler.jit(grad).lower(*inputs).compile().as_text()
    xla_default = jax.jit(grad).lower(*inputs).compile().as_text()
    assert ynn_fused_ops(xla_default)[0] > 0, "XLA's default no longer sends convolutions to YNNPACK: re-measure"
    convolutions, reductions = ynn_fused_ops(ours)
    assert convolutions == 0 and ours.count(" convolution(") == 3
    assert reductions > 0


def test_same_numbers_as_xla_defaults(clean_env, inputs):
    grad = jax.grad(conv_bn_loss, argnums=(0, 1))
    for ours, default in zip(compiler.jit(grad)(*inputs), jax.jit(grad)(*inputs), strict=True):
        np.testing.assert_allclose(ours, default, rtol=2e-4, atol=2e-4 * float(jnp.max(jnp.abs(default))))


def test_composes_inside_the_callers_own_transformations(clean_env, inputs):
    grad = compiler.jit(jax.grad(conv_bn_loss, argnums=1))
    direct = grad(*inputs)
    nested = jax.jit(lambda x, w: grad(x, w) * 2)(*inputs)
    np.testing.assert_allclose(np.asarray(nested), 2 * np.asarray(direct), rtol=1e-5, atol=1e-4)
    assert jax.make_jaxpr(grad)(*inputs).out_avals[0].shape == inputs[1].shape
