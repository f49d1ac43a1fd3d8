from __future__ import annotations

from pathlib import Path

import pytest

from trustune.cli.main import build_parser
from trustune.config import Precision, RunConfig, TrainConfig, config_flags, load_config
from trustune.errors import ConfigError


def test_yaml_maps_onto_dataclasses(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "data:\n  train_file: t.csv\n  max_length: 64\nmodel:\n  name: minilm\n"
        "train:\n  epochs: 2\n  precision: bf16\n  lr: 0.0001\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.data.train_file == "t.csv"
    assert config.data.max_length == 64
    assert config.train.epochs == 2
    assert config.train.precision is Precision.BF16
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epochz": 2}}, "unknown key train.epochz. Allowed keys: ['batch_size'"),
        (
            {"trian": {}},
            "unknown section 'trian'. Choose between ['data', 'model', 'task', 'train']",
        ),
        (
            {"train": {"precision": "fp8"}},
            "train.precision: 'fp8' is not allowed. Choose between ['auto', 'fp32', 'bf16']",
        ),
        ({"train": {"epochs": 0}}, "train.epochs: 0 is not allowed, it must be > 0"),
        ({"train": {"epochs": "three"}}, "train.epochs: 'three' is not a int"),
        ({"train": {"lr": True}}, "train.lr: True is not a float"),
        ({"data": {"validation_fraction": 1.5}}, "data.validation_fraction: 1.5 is not allowed"),
        (
            {"train": {"selection_metric": "auc"}},
            "Choose between ['auto', 'accuracy', 'f1_macro', 'pearson', 'spearman', 'mse', 'mae', 'loss']",
        ),
    ],
)
def test_bad_config_names_key_and_allowed_values(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict(raw)
    assert message in str(e.value)


def test_bad_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml \(line \d+\) is not valid YAML"):
        load_config(path)


def test_every_config_field_has_a_cli_flag() -> None:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    options = {s for action in train._actions for s in action.option_strings}
    flags = config_flags()
    assert {f.name for _, section, f in flags if section == "train"} == set(
        TrainConfig.__dataclass_fields__
    )
    for flag, _, _ in flags:
        assert flag in options
    for expected in (
        "--data",
        "--validation",
        "--model",
        "--epochs",
        "--batch-size",
        "--lr",
        "--max-length",
        "--seed",
    ):
        assert expected in options


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 5\n  batch_size: 8\n", encoding="utf-8")
    args = build_parser().parse_args(["train", "--config", str(path), "--epochs", "2"])
    base = load_config(args.config)
    overrides: dict[str, dict] = {"data": {}, "model": {}, "train": {}}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            overrides[section][name] = value
    merged = base.with_overrides(overrides)
    assert merged.train.epochs == 2
    assert merged.train.batch_size == 8


FLOAT_FIELDS = [
    ("data", "validation_fraction"), ("train", "lr"), ("train", "head_lr"),
    ("train", "weight_decay"), ("train", "warmup_ratio"), ("train", "max_grad_norm"),
    ("privacy", "epsilon"), ("privacy", "delta"),
]  # fmt: skip


@pytest.mark.parametrize(("section", "key"), FLOAT_FIELDS)
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_every_float_field_refuses_nan_and_inf(section: str, key: str, value: float) -> None:
    raw = {section: {key: value}}
    if section == "privacy" and key == "delta":
        raw[section]["epsilon"] = 3.0
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict(raw)
    assert str(e.value).startswith(f"{section}.{key}: ")


def test_lr_inf_from_the_flags_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train.lr: inf is not allowed, it must be a finite"):
        RunConfig().with_overrides({"train": {"lr": float("inf")}})


def test_max_chars_is_a_checked_data_field() -> None:
    assert RunConfig().data.max_chars == 100_000
    with pytest.raises(ConfigError, match=r"data.max_chars: 0 is not allowed"):
        RunConfig.from_dict({"data": {"max_chars": 0}})
    with pytest.raises(ConfigError, match=r"data.max_chars: 5000000 is not allowed"):
        RunConfig.from_dict({"data": {"max_chars": 5_000_000}})


# 9**9 strings once expanded, in a value the config checks (and used to echo whole).
ALIAS_BOMB = (
    "train:\n  lr: ["
    + ", ".join(
        f"&{a} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]"
        for p, a in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
    )
    + "]\n"
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (ALIAS_BOMB, "(line 2) is not valid YAML: aliases (*name) are not allowed"),
        ("train:\n  epochs: " + "7" * 5000 + "\n", "an integer of 5000 characters is too large"),
        ("train:\n  lr: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 8 levels"),
        ("train:\n  lr: [" + ", ".join(["'" + "x" * 500 + "'"] * 500) + "]\n", "is not a float"),
    ],
)
def test_hostile_yaml_gives_a_short_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert message in str(e.value)
    assert len(str(e.value)) < 300 and "\n" not in str(e.value)


def test_a_huge_config_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("# padding\n" * 200_000, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run.yaml has 2,000,000 bytes; a run configuration"):
        load_config(path)


@pytest.mark.parametrize("text", ["1e-4", "1E-4", "5e5", "+2.5e-3", "1_0e-1"])
def test_yaml_exponent_floats_without_a_dot_are_floats(tmp_path: Path, text: str) -> None:
    """YAML 1.1 reads `1e-4` as a string; a config file means the number."""
    path = tmp_path / "run.yaml"
    path.write_text(f"train:\n  lr: {text}\n", encoding="utf-8")
    assert load_config(path).train.lr == pytest.approx(float(text.replace("_", "")))


def test_yaml_quoted_exponent_stays_a_string(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text('train:\n  lr: "1e-4"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"train.lr: '1e-4' is not a float"):
        load_config(path)
