"""Config files, command-line overrides (config_flags semantics) and validation.

The named configs (paper rows, demo) are tested in tests/configs.
"""

import pytest

from bsnn_jax import configs
from bsnn_jax.train import config as C
from bsnn_jax.train import overrides as O


def test_overrides_nested_keys_and_type_coercion():
    c = O.apply_overrides(
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
    back = O.apply_overrides(c, [("model.time_fold", "none")])
    assert back.model.time_fold is None
    for text in ("none", "conv", "auto"):  # remat's default is "auto"; "none" turns it off
        C.validate(O.apply_overrides(c, [("model.remat", text)]))
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
        O.apply_overrides(C.default_config(), [override])


def test_split_override_args_forms():
    rest, overrides = O.split_override_args(
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
    assert C.load_config_file(f).model.variant == "fp"
    c = configs.load(f"{f}:bsnn", [("seed", "7")])
    assert c.model.variant == "bsnn" and c.seed == 7
    (tmp_path / "config.json").write_text(C.to_json(c))
    again = C.load_config_file(tmp_path / "config.json")
    assert C.diff(c, again) == []
    assert again.model.time_fold is False
    # a resumed run's JSON config keeps the field types for overrides
    assert configs.load(tmp_path / "config.json", [("optimizer.learning_rate", "2")]).optimizer.learning_rate == 2.0


def test_config_file_errors(tmp_path):
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load_config_file(tmp_path / "missing.py")
    (tmp_path / "noget.py").write_text("x = 1\n")
    with pytest.raises(C.ConfigError, match="defines no get_config"):
        C.load_config_file(tmp_path / "noget.py")
    (tmp_path / "extra.py").write_text(
        "import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict({'modle': {'name': 'x'}})\n"
    )
    with pytest.raises(C.ConfigError, match=r"unknown config key 'modle'.*Did you mean 'model'"):
        C.load_config_file(tmp_path / "extra.py")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(C.ConfigError, match="not valid JSON"):
        C.load_config_file(tmp_path / "bad.json")


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
        (("model.neuron.reset", "hrad"), r"unknown reset 'hrad' \(model.neuron.reset\); known: hard, soft"),
        (("model.neuron.surrogate", "gauss"), r"unknown surrogate 'gauss' \(model.neuron.surrogate\); known: .*triangle"),
        (("model.remat", "all"), r"unknown remat policy 'all' \(model.remat\); known: auto, block, conv, none"),
    ],
)
def test_validation_names_the_field(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.validate(O.apply_overrides(C.default_config(), [override]))
