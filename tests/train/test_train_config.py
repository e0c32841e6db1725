"""Config files, command-line overrides (config_flags semantics) and validation."""

from pathlib import Path

import pytest

from bsnn_jax.train import config as C

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "experiments" / "configs"
BSO_ROWS = [
    "cifar10_vgg11_tbso_t2", "cifar10_vgg11_tbso_t4", "cifar10_vgg11_tbso_t6", "cifar100_vgg11_tbso_t2",
    "cifar100_vgg11_tbso_t4", "cifar100_vgg11_tbso_t6", "dvs_cifar10_vgg11_tbso_t10",
]
ROWS = [
    "cifar10_resnet19_t2", "cifar10_resnet19_t4", "cifar100_resnet19_t2", "cifar100_resnet19_t4",
    "imagenet_resnet18_t4", "dvs_gesture_vggsnn_t16", "dvs_cifar10_vggsnn_t10",
]


def test_overrides_nested_keys_and_type_coercion():
    c = C.apply_overrides(
        C.default_config(),
        [
            ("optimizer.learning_rate", "1"),  # int text -> float field
            ("num_epochs", "3"),
            ("model.neuron.tau", "0.25"),
            ("model.time_fold", "true"),  # optional bool
            ("dataset.data_dir", "/data/x"),  # optional str
            ("dataset.augment", "no"),
            ("progress", None),  # bare --config.progress -> True
            ("model.variant", "bsnn"),
        ],
    )
    assert c.optimizer.learning_rate == 1.0 and isinstance(c.optimizer.learning_rate, float)
    assert c.num_epochs == 3 and isinstance(c.num_epochs, int)
    assert c.model.neuron.tau == 0.25
    assert c.model.time_fold is True and c.dataset.data_dir == "/data/x"
    assert c.dataset.augment is False and c.progress is True and c.model.variant == "bsnn"
    back = C.apply_overrides(c, [("model.time_fold", "none")])
    assert back.model.time_fold is None
    # the input config is not modified
    assert C.default_config().num_epochs == 1


@pytest.mark.parametrize(
    "override, message",
    [
        (("optimizer.lr", "0.1"), r"unknown config key 'optimizer.lr'.*Did you mean 'optimizer.learning_rate'"),
        (("zz", "1"), r"unknown config key 'zz'.*Known keys at the top level"),
        (("num_epochs", "three"), r"--config.num_epochs='three': expected int"),
        (("num_epochs", "1.5"), r"expected int"),
        (("progress", "maybe"), r"expected bool"),
        (("model", "resnet19"), r"--config.model is a group of keys"),
        (("num_epochs.x", "1"), r"num_epochs is a value, not a group"),
        (("batch_size", None), r"needs a value"),
    ],
)
def test_override_errors_are_clear(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.apply_overrides(C.default_config(), [override])


def test_split_override_args_forms():
    rest, overrides = C.split_override_args(
        ["--config", "x.py", "--config.a=1", "--config.b.c", "2", "--config.flag", "--workdir", "w", "--noconfig.d", "--config.e=x=y"]
    )
    assert rest == ["--config", "x.py", "--workdir", "w"]
    assert overrides == [("a", "1"), ("b.c", "2"), ("flag", None), ("d", "false"), ("e", "x=y")]


def test_config_file_with_argument_and_json_roundtrip(tmp_path):
    f = tmp_path / "exp.py"
    f.write_text(
        "from bsnn_jax.train.config import default_config\n"
        "def get_config(arg='fp'):\n"
        "    c = default_config()\n"
        "    c.model.variant = arg\n"
        "    c.model.time_fold = False\n"
        "    return c\n"
    )
    assert C.load(f).model.variant == "fp"
    c = C.load(f"{f}:bsnn", [("seed", "7")])
    assert c.model.variant == "bsnn" and c.seed == 7
    (tmp_path / "config.json").write_text(C.to_json(c))
    again = C.load(tmp_path / "config.json")
    assert C.diff(c, again) == []
    assert again.model.time_fold is False
    # a resumed run's JSON config keeps the field types for overrides
    assert C.load(tmp_path / "config.json", [("optimizer.learning_rate", "2")]).optimizer.learning_rate == 2.0


def test_config_file_errors(tmp_path):
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load(tmp_path / "missing.py")
    (tmp_path / "noget.py").write_text("x = 1\n")
    with pytest.raises(C.ConfigError, match="defines no get_config"):
        C.load(tmp_path / "noget.py")
    (tmp_path / "extra.py").write_text(
        "import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict({'modle': {'name': 'x'}})\n"
    )
    with pytest.raises(C.ConfigError, match=r"unknown config key 'modle'.*Did you mean 'model'"):
        C.load(tmp_path / "extra.py")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(C.ConfigError, match="not valid JSON"):
        C.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "override, message",
    [
        (("model.name", "resnet20"), r"unknown model 'resnet20' \(model.name\); known: .*resnet19"),
        (("model.variant", "ternary"), r"unknown variant 'ternary'"),
        (("dataset.name", "mnist"), r"unknown dataset 'mnist' \(dataset.name\); known: fashion_mnist"),
        (("loss.name", "mse"), r"unknown loss 'mse'"),
        (("optimizer.name", "lamb"), r"unknown optimizer 'lamb'"),
        (("batch_size", "0"), r"batch_size must be an integer >= 1"),
        (("schedule.warmup_epochs", "5"), r"schedule.warmup_epochs must be in"),
    ],
)
def test_validation_names_the_field(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.validate(C.apply_overrides(C.default_config(), [override]))


def test_every_experiment_config_loads_and_validates():
    files = sorted(CONFIGS.glob("*.py"))
    names = {f.stem for f in files}
    for row in ROWS:
        assert {row, f"{row}_bsnn", f"{row}_fp"} <= names
    assert {"demo", "fashion_agmm", "fashion_tbso"} | set(BSO_ROWS) <= names
    for f in files:
        if f.stem in ("__init__", "common"):
            continue
        c = C.load(f)
        C.validate(c)


@pytest.mark.parametrize("row", ROWS)
def test_table1_rows_follow_the_paper_and_twins_differ_only_by_variant(row):
    c = C.load(CONFIGS / f"{row}.py")
    assert c.model.variant == "agmm"
    assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.momentum, c.optimizer.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    assert (c.schedule.name, c.batch_size, c.seed) == ("cosine", 64, 3407)
    epochs = {"cifar": 400, "imagenet": 300, "dvs": 300}
    assert c.num_epochs == next(v for k, v in epochs.items() if row.startswith(k))
    assert c.model.timesteps == int(row.rsplit("_t", 1)[1])
    for variant in ("bsnn", "fp"):
        twin = C.load(CONFIGS / f"{row}_{variant}.py")
        assert {k for k, _, _ in C.diff(c, twin)} == {"model.variant", "name"}
        assert twin.model.variant == variant


@pytest.mark.parametrize("row", BSO_ROWS)
def test_bso_rows_follow_the_paper(row):
    """BSO paper Table 2/6/7 and methods-spec 2.1-2.4: VGG-11 trained online by T-BSO."""
    c = C.load(CONFIGS / f"{row}.py")
    assert (c.model.name, c.model.variant, c.model.timesteps) == ("vgg11", "bsnn", int(row.rsplit("_t", 1)[1]))
    assert (c.train.mode, c.train.online_update, c.optimizer.binary) == ("online", "per_step", "t_bso")
    f = c.optimizer.flip
    assert (f.threshold, f.rate, f.beta2) == (1e-6 if row.startswith("dvs") else 5e-7, 1e-3, 1 - 1e-5)
    assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.momentum, c.optimizer.weight_decay) == ("sgd", 0.1, 0.0, 0.0)
    assert (c.schedule.name, c.batch_size, c.num_epochs, c.seed, c.loss.name) == ("cosine", 128, 400, 2025, "tet_mse")
    assert c.model.neuron.reset == "soft" and c.model.neuron.surrogate == "sigmoid" and c.model.neuron.beta == 4.0
    assert c.dataset.name == row.split("_vgg11")[0]
