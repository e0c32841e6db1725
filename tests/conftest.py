"""Test-wide setup: 8 virtual CPU devices, so sharding tests see a multi-device mesh.

This must run before JAX initialises its backends, which is why it sits at import time here.
"""

import os

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)


@pytest.fixture(scope="session")
def launch_env(tmp_path_factory) -> dict[str, str]:
    """What to add to the environment of the processes tests start (``bsnn`` runs, notebook
    kernels): a JAX persistent compilation cache shared by the session's xdist workers, so a
    program one launch compiled (the same run on the same topology, JAX's small helper programs)
    is read back by the next one instead of compiled again. Only for those processes, never the
    pytest workers themselves: tests there compare compiled HLO text and memory analyses, which
    differ for an executable read from the cache. The directory sits under the session's base
    temp, which pytest removes with its old sessions."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: the workers' common parent
    cache = root / "jax_compilation_cache"
    cache.mkdir(exist_ok=True)
    return {"JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(workdir, summary)`` of one uninterrupted ``tiny_config()`` run (train/conftest.py),
    trained once per worker for every module that only reads it (the fit and export tests):
    each ``fit`` compiles its own steps, ~10-40 s here. Tests that write into it work on a copy."""
    from rich.console import Console
    from train.conftest import tiny_config  # tests/ is on sys.path (rootdir conftest)

    from bsnn_jax.train import fit

    workdir = tmp_path_factory.mktemp("tiny_run") / "run"
    return workdir, fit(tiny_config(), workdir, console=Console(quiet=True))
