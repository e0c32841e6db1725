"""The wheel: what it holds, and a non-editable install that trains from another directory.

The install goes into a fresh venv whose only view of the test environment's packages is a
``.pth`` line naming a directory of links to them, without this project's own (editable)
install, so ``bsnn`` and ``bsnn_jax`` can only come from the wheel.

Planted bugs this caught (in a copy of the checkout): the subpackages left out of the wheel
(``include = ["bsnn_jax"]``);
``--version`` reading a version of its own instead of ``bsnn_jax.__version__``.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import bsnn_jax
from bsnn_jax import cli, configs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    # a clean copy of what the sdist holds: no build/ left over from an earlier build, nothing written into the checkout
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "bsnn_jax", source / "bsnn_jax", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        cwd=out,
    )
    (path,) = out.glob("bsnn_jax-*.whl")
    return path


def test_the_wheel_holds_configs_types_and_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bsnn_jax/py.typed" in names
    assert {f"bsnn_jax/configs/{m}.py" for m in ("__init__", "builtin", "agmm_table1", "bso_table2")} <= names
    info = f"bsnn_jax-{bsnn_jax.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    license_text = zipfile.ZipFile(wheel).read(f"{info}/licenses/LICENSE").decode()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert f"Version: {bsnn_jax.__version__}" in metadata
    assert "bsnn = bsnn_jax.cli:main" in zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"bsnn {bsnn_jax.__version__} (jax ")


def _venv_with_the_wheel(tmp: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; the test environment's other packages through one .pth."""
    deps = tmp / "deps"
    deps.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.startswith(("bsnn_jax", "__editable__", "_bsnn_jax")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv_site,) = venv.glob("lib/python3*/site-packages")
    (venv_site / "shared_deps.pth").write_text(f"{deps}\n")
    python = venv / "bin" / "python"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)],
        env=_outside_env(),
        capture_output=True,
        text=True,
    )
    assert "Successfully installed bsnn-jax" in pip.stdout, pip.stdout + pip.stderr
    return venv


def _outside_env() -> dict[str, str]:
    """The environment without the checkout on ``PYTHONPATH`` (as the test suite may run)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.slow
def test_installed_bsnn_trains_outside_the_checkout(wheel, tmp_path):
    venv = _venv_with_the_wheel(tmp_path, wheel)
    bsnn = venv / "bin" / "bsnn"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = _outside_env()
    run = lambda *args: subprocess.run([str(bsnn), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import bsnn_jax; print(bsnn_jax.__file__)"], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip().startswith(f"bsnn {bsnn_jax.__version__}")
    trained = run(
        "train",
        "--config",
        "demo",
        "--workdir",
        "run",
        "--config.dataset.name=digits",
        "--config.num_epochs=1",
        "--config.steps_per_epoch=5",
        "--config.batch_size=16",
        "--config.mesh.num_devices=1",
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "test accuracy" in trained.stdout and (cwd / "run" / "metrics.jsonl").exists()
    # every paper row resolves by name in the installed package (no file of the checkout needed)
    names = configs.names()
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from bsnn_jax import configs; print(' '.join(configs.names()))"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.stdout.split() == list(names)
