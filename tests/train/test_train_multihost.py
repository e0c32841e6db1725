"""Multi-host training with real processes on localhost: JAX's multi-controller runtime
(``jax.distributed`` with a 127.0.0.1 coordinator, gloo collectives), each process with a few
virtual CPU devices. The same config trains the same run on any topology (processes x devices),
a stop on one process stops all of them at one step with one checkpoint, and that checkpoint
resumes on another topology to the end of the uninterrupted run."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = [
    "--config", "demo",
    "--config.dataset.name=digits", "--config.dataset.num_threads=1", "--config.progress=false",
    "--config.batch_size=32", "--config.eval_batch_size=120",
    "--config.num_epochs=3", "--config.steps_per_epoch=10", "--config.log_every_steps=5",
]  # fmt: skip
TIMEOUT = 600  # seconds for one launch; ~30 s on a quiet 2-core machine, minutes on a loaded one
TIMES = ("time", "train_seconds", "epoch_seconds", "eval_seconds")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(
    workdir: Path,
    processes: int,
    devices: int,
    *,
    only_on: dict | None = None,
    stop_process_after_first_epoch: int | None = None,
) -> list[int]:
    """Runs ``bsnn train`` as ``processes`` processes of ``devices`` CPU devices each and returns
    their exit statuses. With ``stop_process_after_first_epoch=i``, process i gets SIGTERM once
    process 0 has printed the first epoch's row; ``only_on={i: [args]}`` adds arguments to process
    i alone. They inherit the environment, with the session's compilation cache (conftest.py).
    Every process is killed if the launch overruns."""
    port = _free_port()
    path = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "PYTHONPATH": path}
    procs, logs = [], []
    stack = contextlib.ExitStack()
    for i in range(processes):
        launch_args = [
            f"--config.mesh.coordinator_address=127.0.0.1:{port}", f"--config.mesh.num_processes={processes}",
            f"--config.mesh.process_id={i}",
        ] if processes > 1 else []  # fmt: skip
        log = stack.enter_context(open(workdir.parent / f"{workdir.name}.{processes}x{devices}.{i}.log", "w+"))  # noqa: SIM115 - closed by the ExitStack
        own = (only_on or {}).get(i, [])
        cmd = [sys.executable, "-m", "bsnn_jax.cli", "train", "--workdir", str(workdir), *RUN, *launch_args, *own]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        logs.append(log)
    deadline = time.monotonic() + TIMEOUT
    try:
        if stop_process_after_first_epoch is not None:
            while "epoch 1/3" not in Path(logs[0].name).read_text():
                assert time.monotonic() < deadline and procs[0].poll() is None, Path(logs[0].name).read_text()[-2000:]
                time.sleep(0.1)
            procs[stop_process_after_first_epoch].send_signal(signal.SIGTERM)
        return [p.wait(timeout=max(deadline - time.monotonic(), 1)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        stack.close()


def rows(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a: list[dict], b: list[dict]) -> None:
    """The same epochs with the same numbers, up to the float reassociation of a sum over 4
    devices in one process vs 2 x 2 across processes (~1e-7 measured)."""
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) == 3
    for ra, rb in zip(a, b, strict=True):
        for key in set(ra) - set(TIMES):
            if isinstance(ra[key], dict):
                np.testing.assert_allclose(_leaves(ra[key]), _leaves(rb[key]), rtol=1e-4, atol=1e-9, err_msg=key)
            elif isinstance(ra[key], float):
                np.testing.assert_allclose(rb[key], ra[key], rtol=1e-5, err_msg=key)
            else:
                assert ra[key] == rb[key], key


def _leaves(tree) -> list[float]:
    return [v for k in sorted(tree) for v in (_leaves(tree[k]) if isinstance(tree[k], dict) else [tree[k]])]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run on 1 process x 4 devices."""
    workdir = tmp_path_factory.mktemp("one_process") / "run"
    assert launch(workdir, 1, 4) == [0], (workdir.parent / "run.1x4.0.log").read_text()[-3000:]
    return workdir


def test_two_processes_train_the_run_of_one_stop_together_and_resume_on_another_topology(uninterrupted, tmp_path):
    """2 processes x 2 devices, SIGTERM on process 1 after the first epoch: process 0 alone
    speaks and writes the run files; both stop at the same step with one checkpoint. That run
    then ends on 1 process x 1 device with the metrics of the uninterrupted 1 x 4 run, row for
    row: the epoch the two processes trained and the state they saved are those of one process."""
    workdir = tmp_path / "run"
    codes = launch(workdir, 2, 2, stop_process_after_first_epoch=1)
    logs = [(tmp_path / f"run.2x2.{i}.log").read_text() for i in (0, 1)]
    assert codes == [130, 130], logs[0][-3000:] + logs[1][-3000:]
    assert "epoch 1/3" in logs[0] and "epoch 1/3" not in logs[1]  # process 0 alone speaks
    assert "stopped by a stop on another process" in logs[0]
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert 10 < steps[-1] < 30
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["mesh"]["num_processes"] == 0 and saved["mesh"]["process_id"] == -1  # the launch is not the run
    assert launch(workdir, 1, 1) == [0], (tmp_path / "run.1x1.0.log").read_text()[-3000:]
    assert "resuming" in (tmp_path / "run.1x1.0.log").read_text()
    assert_same_run(rows(uninterrupted), rows(workdir))


def test_processes_started_with_different_configs_stop_with_one_error_line(tmp_path):
    """Process 1 started with another seed: both stop before training, with the error naming
    the config, and nothing is written."""
    workdir = tmp_path / "run"
    codes = launch(workdir, 2, 1, only_on={1: ["--config.seed=1"]})
    logs = [(tmp_path / f"run.2x1.{i}.log").read_text() for i in (0, 1)]
    assert codes == [2, 2], logs
    assert all("have another config than process 0" in log and "Traceback" not in log for log in logs)
    assert not (workdir / "checkpoints").exists() and not (workdir / "metrics.jsonl").exists()
