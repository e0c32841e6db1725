"""TensorBoard event files and profiler traces of a tiny real run, read back independently.

The event files are decoded here with nothing but their record framing (length, CRC, Event
proto) and tensorboardX's generated protos, and compared with ``metrics.jsonl``, with the mean of
each epoch's logging windows (= the epoch's training loss), with AGMM Eq. 8 per layer counted
from the kernels of the run's checkpoints, and with the pixels of the landscape PNG.

Planted bugs this caught (in a copy of the library): the window mean over the first step only;
the epoch scalars written at the epoch number instead of the step; the per-layer flip ratio
computed against the new signs instead of the epoch-start ones; the profile never started.
"""

import gzip
import io
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from train.conftest import restore_training_state  # tests/ is on sys.path (rootdir conftest)

from bsnn_jax import train
from bsnn_jax.analysis.runs import landscape_run
from bsnn_jax.metrics import flip_kernels
from bsnn_jax.train.config import validate
from bsnn_jax.train.writers import TENSORBOARD_DIR, flatten_numbers

STEPS, WINDOW = 6, 3


def read_events(directory: Path) -> list:
    """Every Event of the TFRecord files in ``directory`` (header: u64 length + u32 CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            events.append(Event.FromString(data[at + 12 : at + 12 + length]))
            at += 12 + length + 4
    return events


def scalars(events) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for event in events:
        for value in event.summary.value:
            if value.HasField("simple_value"):
                out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_config):
    workdir = tmp_path_factory.mktemp("tb")
    config = make_config(num_epochs=2, steps_per_epoch=STEPS, log_every_steps=WINDOW)
    config.logging.profile_steps = (4, 5)
    train.fit(config, workdir, console=Console(quiet=True))
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return workdir, rows, scalars(read_events(workdir / TENSORBOARD_DIR))


def test_epoch_scalars_are_the_metrics_rows(run):
    _, rows, tb = run
    assert len(rows) == 2
    for row in rows:
        numbers = {k: v for k, v in flatten_numbers(row).items() if k not in ("epoch", "step", "time")}
        assert any(k.startswith("firing_rates/") for k in numbers) and any(k.startswith("grad_stats/") for k in numbers)
        for key, value in numbers.items():
            assert tb[f"epoch/{key}"][row["step"]] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_window_means_make_the_epoch_loss(run):
    _, rows, tb = run
    assert sorted(tb["window/loss"]) == [3, 6, 9, 12]
    for row, (a, b) in zip(rows, [(3, 6), (9, 12)], strict=True):
        # equal windows: the epoch's example-weighted loss is the mean of the two window means
        assert (tb["window/loss"][a] + tb["window/loss"][b]) / 2 == pytest.approx(row["train_loss"], rel=1e-6)
        assert (tb["window/accuracy"][a] + tb["window/accuracy"][b]) / 2 == pytest.approx(row["train_accuracy"], rel=1e-6)
        mean_step_flips = (tb["window/flip_ratio_step"][a] + tb["window/flip_ratio_step"][b]) / 2
        assert mean_step_flips == pytest.approx(row["flip_ratio_step"], rel=1e-5)


def test_per_layer_flip_ratios_from_the_checkpoints(run):
    workdir, rows, tb = run
    run_, state, _ = restore_training_state(workdir, STEPS)
    states = {0: train.build(run_.config).state, STEPS: state, 2 * STEPS: restore_training_state(workdir, 2 * STEPS)[1]}
    kernels = {s: flip_kernels(run_.defs.model(st.params, st.model_state)) for s, st in states.items()}
    for row in rows:
        before, after = kernels[row["step"] - STEPS], kernels[row["step"]]
        flipped = {k: int(np.sum((np.asarray(before[k]) >= 0) != (np.asarray(after[k]) >= 0))) for k in after}
        assert sorted(k.split("/", 2)[2] for k in tb if k.startswith("epoch/flip_ratio_layer/")) == sorted(after)
        for layer in after:
            assert tb[f"epoch/flip_ratio_layer/{layer}"][row["step"]] == pytest.approx(flipped[layer] / after[layer].size, abs=1e-9)
        assert sum(flipped.values()) / sum(v.size for v in after.values()) == pytest.approx(row["flip_ratio"], rel=1e-6)
        assert sum(flipped.values()) > 0


def test_profile_trace_of_the_chosen_steps(run):
    workdir, _, _ = run
    (folder,) = (workdir / TENSORBOARD_DIR / "plugins" / "profile").iterdir()
    assert (xplane := next(folder.glob("*.xplane.pb"))).stat().st_size > 0, xplane
    with gzip.open(next(folder.glob("*.trace.json.gz"))) as f:
        names = [e.get("name", "") for e in json.load(f)["traceEvents"]]
    # the Python tracer saw the loop's train_step exactly once per chosen step (4 and 5)
    assert sum(bool(re.search(r"fit\.py:\d+ train_step$", n)) for n in names) == 2
    assert any("PjitFunction(step)" in n for n in names)


def test_landscape_image_lands_in_tensorboard(run):
    import matplotlib.image

    workdir, rows, _ = run
    result = landscape_run(workdir, resolution=3, examples=32)
    images = [
        (e.step, v.image)
        for e in read_events(workdir / TENSORBOARD_DIR)
        for v in e.summary.value
        if v.tag == "landscape" and v.HasField("image")
    ]
    assert [step for step, _ in images] == [rows[-1]["step"]]
    decoded = matplotlib.image.imread(io.BytesIO(images[0][1].encoded_image_string), format="png")
    drawn = matplotlib.image.imread(result["png"])
    assert decoded.shape[:2] == drawn.shape[:2] == (images[0][1].height, images[0][1].width)
    np.testing.assert_allclose(decoded[..., :3], drawn[..., :3], atol=1 / 255 + 1e-6)


def test_bad_profile_steps_are_a_config_error(make_config):
    config = make_config()
    config.logging.profile_steps = (0, 3)
    with pytest.raises(train.ConfigError, match="profile_steps=10,11"):
        validate(config)
