"""Test-wide setup: 8 virtual CPU devices, so sharding tests see a multi-device mesh, and one
JAX persistent compilation cache for the whole session.

The devices must be set before JAX initialises its backends, which is why it sits at import time.
"""

import os
import shutil
import tempfile

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)

_CACHE_KEY = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """One compilation cache per session, shared by the xdist workers and every process a test
    starts (``bsnn`` runs, notebook kernels, multi-host launches): a program compiled once (JAX's
    random initialisers, ~1 s each per shape on XLA:CPU; the same training step in a resumed run)
    is read back instead of compiled again. Set here, before any compilation, in the process that
    starts the others; they inherit it through the environment. An executable read back gives the
    same HLO text and memory analysis as a fresh compile (the tests that count instructions and
    bytes pass either way). No size limit: with one, JAX locks the cache for every read and write
    and lists all its entries on every write, which serialised the processes (a fresh-clone run
    went from 13 to over 20 minutes). Without the lock a process can meet an entry another is
    still writing; JAX then warns and compiles (pyproject.toml ignores that warning). Removed at
    the end of the session."""
    if hasattr(config, "workerinput") or "JAX_COMPILATION_CACHE_DIR" in os.environ:  # an xdist worker, or the caller's cache
        return
    path = tempfile.mkdtemp(prefix="bsnn_jax_test_xla_cache_")
    config.stash[_CACHE_KEY] = path
    settings = {  # each also as its environment variable (the upper-case name) for the processes started later
        "jax_compilation_cache_dir": path,
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    os.environ.update({name.upper(): str(value) for name, value in settings.items()})
    for name, value in settings.items():  # this process imported JAX before: without xdist it runs the tests itself
        jax.config.update(name, value)


def pytest_unconfigure(config):
    path = config.stash.get(_CACHE_KEY, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


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
