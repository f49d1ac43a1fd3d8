"""Typed configuration: one dataclass per concern, one YAML file maps onto them 1:1.

The CLI flags of ``trustune train`` are generated from these fields (see
``cli/train.py``), so a key in the YAML file, a field here and a flag are the
same thing under three spellings: ``train.batch_size`` / ``--batch-size``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trustune.errors import ConfigError, PrivacyError
from trustune.messages import shortened, shown

__all__ = [
    "DEFAULT_MAX_CHARS",
    "Accountant",
    "Attention",
    "Clipping",
    "DataConfig",
    "Loss",
    "ModelConfig",
    "PoolerInit",
    "Precision",
    "PrivacyConfig",
    "RunConfig",
    "SelectionMetric",
    "TaskConfig",
    "TaskType",
    "TrainConfig",
    "config_flags",
    "flag_metadata",
    "flag_name",
    "load_config",
    "settings_flags",
]


class _ListableEnum(enum.StrEnum):
    @classmethod
    def list(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def choices(cls) -> tuple[str, ...]:
        """What a flag accepts: the values, and any other names (``--task chat``)."""
        return tuple(cls.list())

    @classmethod
    def parse(cls, value: Any, key: str) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ConfigError(
                f"{key}: {shown(value)} is not allowed. Choose between {cls.list()}"
            ) from None


class Precision(_ListableEnum):
    """Arithmetic used for training. ``auto`` picks bf16 on a GPU that has it, else fp32."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


class Trainable(_ListableEnum):
    """Which weights fine-tuning updates. ``bitfit``: only biases, LayerNorm and the head
    (under one percent of the parameters; far less for DP-SGD's noise to spread over)."""

    ALL = "all"
    BITFIT = "bitfit"


class Attention(_ListableEnum):
    """Attention kernel for training. ``auto``: eager on CPU (its backward pass measured 2x
    faster than PyTorch's fused SDPA kernel for short texts), SDPA on GPU."""

    AUTO = "auto"
    EAGER = "eager"
    SDPA = "sdpa"


class PoolerInit(_ListableEnum):
    """What the pooler of a base checkpoint starts from when a new head is trained.
    ``pretrained``: the checkpoint's own pooler weights; ``reinit``: transformers' initialiser
    (normal, ``initializer_range``), as for a checkpoint without a pooler. Sentence encoders
    trained with mean pooling ship a pooler that was never trained (all-MiniLM-L6-v2: zero bias,
    weights of std 0.009); BENCHMARKS.md has the ablation."""

    PRETRAINED = "pretrained"
    REINIT = "reinit"


class SelectionMetric(_ListableEnum):
    """Validation metric used for early stopping and best-checkpoint selection. ``auto``: the
    task's own (accuracy for classification, Spearman correlation for regression)."""

    AUTO = "auto"
    ACCURACY = "accuracy"
    F1_MACRO = "f1_macro"
    PEARSON = "pearson"
    SPEARMAN = "spearman"
    MSE = "mse"
    MAE = "mae"
    LOSS = "loss"


class TaskType(_ListableEnum):
    """What the model learns. ``auto``: text generation (``causal-lm``) for a file of
    conversations, prompts and completions or instructions; regression when the targets are
    numbers that are not all whole (scores such as 3.8); else classification. ``chat`` is
    another name of ``causal-lm``."""

    AUTO = "auto"
    TEXT_CLASSIFICATION = "text-classification"
    TEXT_REGRESSION = "text-regression"
    CAUSAL_LM = "causal-lm"

    @classmethod
    def choices(cls) -> tuple[str, ...]:
        return (*cls.list(), "chat")

    @classmethod
    def parse(cls, value: Any, key: str) -> Any:
        if isinstance(value, str) and value.lower() == "chat":
            return cls.CAUSAL_LM
        return super().parse(value, key)


class Loss(_ListableEnum):
    """The training loss. ``auto``: the task's own (cross-entropy for classification, mean
    squared error on standardised targets for regression); ``huber`` is the robust choice for
    regression targets with outliers."""

    AUTO = "auto"
    CROSS_ENTROPY = "cross-entropy"
    MSE = "mse"
    HUBER = "huber"


class Accountant(_ListableEnum):
    """How the privacy budget spent is computed: ``prv`` (privacy random variables, Gopi et
    al. 2021; the tighter bound) or ``rdp`` (Rényi DP, Mironov 2017; the classic one)."""

    PRV = "prv"
    RDP = "rdp"


class Clipping(_ListableEnum):
    """How per-example gradients are clipped under DP. ``ghost``: their norms are computed
    without materialising them (Opacus ghost clipping; little extra memory); ``hooks``: every
    per-example gradient is materialised (Opacus hooks); ``auto``: ghost where the model allows."""

    AUTO = "auto"
    GHOST = "ghost"
    HOOKS = "hooks"


def flag_metadata(help: str, *, flag: str | None = None, **extra: Any) -> Any:
    """Field metadata that makes a settings field a command-line flag (``cli/flags.py`` builds
    it): its help, its name when not ``--`` and the field's name, and hints such as ``metavar``,
    ``type`` (of an optional number) or ``shown`` (the default as the help prints it)."""
    return {"help": help, "flag": flag, **extra}


_flag = flag_metadata  # the short name the fields below use


def flag_name(spec: dataclasses.Field[Any]) -> str:
    """The flag of a field: its ``flag`` metadata, else ``--`` and its name (``--batch-size``)."""
    return str(spec.metadata.get("flag") or "--" + spec.name.replace("_", "-"))


def settings_flags(settings_type: type) -> list[tuple[str, dataclasses.Field[Any]]]:
    """(flag, field) for every field of a settings dataclass that is a flag (has help)."""
    return [
        (flag_name(spec), spec)
        for spec in dataclasses.fields(settings_type)
        if "help" in spec.metadata
    ]


DEFAULT_MAX_CHARS = 100_000
_MAX_CHARS_CEILING = 1_000_000  # 4 MB of UTF-8 at most: below the readers' 16 MiB line limit


def _check_positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    """A finite number > 0 (or >= 0): nan and inf are refused, naming the key."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{key}: {shown(value)} is not a number")
    bound = ">= 0" if allow_zero else "> 0"
    if math.isinf(value):
        raise ConfigError(f"{key}: {value!r} is not allowed, it must be a finite number {bound}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: {shown(value)} is not allowed, it must be {bound}")


def _check_fraction(key: str, value: float, *, low_open: bool) -> None:
    """A number in (0, 1) or [0, 1); nan and inf are refused, naming the key."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{key}: {shown(value)} is not a number")
    if not (0 < value < 1 or (value == 0 and not low_open)):
        bounds = "between 0 and 1 (exclusive)" if low_open else "in [0, 1)"
        raise ConfigError(f"{key}: {shown(value)} is not allowed, it must be {bounds}")


@dataclass
class DataConfig:
    """Where the labeled data comes from and how it is read."""

    train_file: str | None = field(
        default=None, metadata=_flag("training data: CSV, TSV, JSONL or Parquet", flag="--data")
    )
    validation_file: str | None = field(
        default=None,
        metadata=_flag(
            "validation data (default: a stratified split of --data)", flag="--validation"
        ),
    )
    text_column: str | None = field(
        default=None, metadata=_flag("column holding the text (detected when unambiguous)")
    )
    label_column: str | None = field(
        default=None,
        metadata=_flag("column holding the label or score (detected when unambiguous)"),
    )
    text_pair_column: str | None = field(
        default=None,
        metadata=_flag(
            "column holding the second text of sentence pairs (detected for sentence1/sentence2, "
            "premise/hypothesis, question/answer ...)"
        ),
    )
    validation_fraction: float = field(
        default=0.1, metadata=_flag("share of --data held out when no --validation is given")
    )
    max_length: int = field(
        default=128, metadata=_flag("longest input in tokens; longer texts are truncated")
    )
    max_chars: int = field(
        default=DEFAULT_MAX_CHARS,
        metadata=_flag(
            "longest text in characters; longer texts are cut when read (far above any token "
            "limit; bounds the memory one row can take)"
        ),
    )
    skip_bad_rows: bool = field(
        default=False, metadata=_flag("drop rows with empty text or label instead of failing")
    )

    def __post_init__(self) -> None:
        _check_fraction("data.validation_fraction", self.validation_fraction, low_open=True)
        _check_positive("data.max_length", self.max_length)
        _check_positive("data.max_chars", self.max_chars)
        if self.max_chars > _MAX_CHARS_CEILING:
            raise ConfigError(
                f"data.max_chars: {shown(self.max_chars)} is not allowed, it must be at most "
                f"{_MAX_CHARS_CEILING:,}"
            )


@dataclass
class TaskConfig:
    """Which task the run trains (the entry of the task registry, ``trustune.tasks``)."""

    type: TaskType = field(
        default=TaskType.AUTO,
        metadata=_flag("task: " + "|".join(TaskType.choices()), flag="--task"),
    )
    loss: Loss = field(
        default=Loss.AUTO, metadata=_flag("training loss: " + "|".join(Loss.list()), flag="--loss")
    )

    def __post_init__(self) -> None:
        self.type = TaskType.parse(self.type, "task.type")
        self.loss = Loss.parse(self.loss, "task.loss")


@dataclass
class ModelConfig:
    """Which pretrained checkpoint to start from."""

    name: str = field(
        default="minilm",
        metadata=_flag(
            "'minilm' (bundled), a local checkpoint folder, or a hub id", flag="--model"
        ),
    )
    attention: Attention = field(
        default=Attention.AUTO,
        metadata=_flag("attention kernel for training: " + "|".join(Attention.list())),
    )
    pooler: PoolerInit = field(
        default=PoolerInit.PRETRAINED,
        metadata=_flag(
            "initial pooler of a new head: " + "|".join(PoolerInit.list()) + " (the "
            "checkpoint's, or freshly initialised)"
        ),
    )

    lora: bool = field(
        default=False,
        metadata=_flag(
            "causal-lm: train LoRA adapters (peft) instead of every weight; they are merged "
            "into the saved model"
        ),
    )
    lora_r: int = field(default=16, metadata=_flag("rank of the LoRA adapters (with --lora)"))
    lora_alpha: float | None = field(
        default=None,
        metadata=_flag("LoRA scaling alpha (with --lora; default: twice the rank)", type=float),
    )
    lora_dropout: float = field(
        default=0.05, metadata=_flag("dropout on the LoRA adapters' input (with --lora)")
    )

    def __post_init__(self) -> None:
        self.attention = Attention.parse(self.attention, "model.attention")
        self.pooler = PoolerInit.parse(self.pooler, "model.pooler")
        if isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int) or self.lora_r < 1:
            raise ConfigError(f"model.lora_r must be a whole number >= 1, not {self.lora_r!r}")
        if not 0 <= float(self.lora_dropout) < 1:
            raise ConfigError(f"model.lora_dropout must be in [0, 1), not {self.lora_dropout!r}")


@dataclass
class TrainConfig:
    """How the model is fine-tuned."""

    epochs: int = field(default=3, metadata=_flag("passes over the training data"))
    batch_size: int = field(default=32, metadata=_flag("examples per optimizer step (per device)"))
    lr: float = field(default=5e-5, metadata=_flag("peak learning rate of AdamW"))
    head_lr: float | None = field(
        default=None,
        metadata=_flag(
            "peak learning rate of the classification head (classifier and pooler), which "
            "starts untrained; default: --lr",
            type=float,
        ),
    )
    trainable: Trainable = field(
        default=Trainable.ALL,
        metadata=_flag(
            "weights to train: all, or bitfit (biases, LayerNorm and the head only: under one percent of "
            "the parameters; the recommended choice with --dp-epsilon)"
        ),
    )
    weight_decay: float = field(default=0.01, metadata=_flag("AdamW weight decay"))
    warmup_ratio: float = field(default=0.06, metadata=_flag("share of steps with linear warm-up"))
    gradient_accumulation_steps: int = field(
        default=1, metadata=_flag("micro-batches accumulated per optimizer step")
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata=_flag(
            "clip gradients to this L2 norm (with --dp-epsilon: each example's gradient, the C "
            "of DP-SGD)"
        ),
    )
    precision: Precision = field(
        default=Precision.AUTO, metadata=_flag("arithmetic: " + "|".join(Precision.list()))
    )
    group_by_length: bool = field(
        default=True, metadata=_flag("batch texts of similar length together (less padding)")
    )
    evaluate_every: int = field(
        default=0, metadata=_flag("validate every N optimizer steps (0: once per epoch)")
    )
    early_stopping_patience: int = field(
        default=2, metadata=_flag("stop after N validations without improvement (0: never)")
    )
    selection_metric: SelectionMetric = field(
        default=SelectionMetric.AUTO,
        metadata=_flag("validation metric for early stopping: " + "|".join(SelectionMetric.list())),
    )
    keep_checkpoints: int = field(default=2, metadata=_flag("how many recent checkpoints to keep"))
    seed: int = field(default=42, metadata=_flag("seed for weights, data order and splits"))

    def __post_init__(self) -> None:
        self.precision = Precision.parse(self.precision, "train.precision")
        self.trainable = Trainable.parse(self.trainable, "train.trainable")
        self.selection_metric = SelectionMetric.parse(
            self.selection_metric, "train.selection_metric"
        )
        for key in (
            "epochs",
            "batch_size",
            "lr",
            "gradient_accumulation_steps",
            "keep_checkpoints",
            "max_grad_norm",
        ):
            _check_positive(f"train.{key}", getattr(self, key))
        for key in ("weight_decay", "evaluate_every", "early_stopping_patience"):
            _check_positive(f"train.{key}", getattr(self, key), allow_zero=True)
        if self.head_lr is not None:
            _check_positive("train.head_lr", self.head_lr)
        _check_fraction("train.warmup_ratio", self.warmup_ratio, low_open=False)


@dataclass
class PrivacyConfig:
    """Differentially private training (DP-SGD) and PII redaction.

    DP is on when ``epsilon`` is set. The per-example clipping norm C is
    ``train.max_grad_norm`` (one knob: without DP it clips the batch gradient) and the
    logical batch is ``train.batch_size * train.gradient_accumulation_steps`` examples.
    """

    epsilon: float | None = field(
        default=None,
        metadata=_flag(
            "train with differential privacy (DP-SGD) to this ε (off when unset)",
            flag="--dp-epsilon",
            type=float,
        ),
    )
    delta: float | None = field(
        default=None,
        metadata=_flag(
            "δ of the (ε, δ) guarantee (default: 1/N^1.1 for N training rows; must be < 1/N)",
            flag="--dp-delta",
            type=float,
        ),
    )
    accountant: Accountant = field(
        default=Accountant.PRV,
        metadata=_flag("privacy accountant: " + "|".join(Accountant.list()), flag="--accountant"),
    )
    clipping: Clipping = field(
        default=Clipping.AUTO,
        metadata=_flag("per-example clipping: " + "|".join(Clipping.list()), flag="--dp-clipping"),
    )
    physical_batch_size: int = field(
        default=0,
        metadata=_flag(
            "most examples per forward pass under DP; larger Poisson batches are split "
            "(0: train.batch_size, with room for Poisson's spread)",
            flag="--dp-physical-batch-size",
        ),
    )
    freeze_embeddings: bool = field(
        default=True,
        metadata=_flag(
            "under DP, keep the embedding layer frozen (half the parameters: less noise, faster)",
            flag="--dp-freeze-embeddings",
        ),
    )
    redact_pii: bool = field(
        default=False,
        metadata=_flag(
            "replace e-mail addresses, phone and card numbers, IP addresses, IBANs ... in texts "
            "before training and prediction",
            flag="--redact-pii",
        ),
    )

    def __post_init__(self) -> None:
        self.accountant = Accountant.parse(self.accountant, "privacy.accountant")
        self.clipping = Clipping.parse(self.clipping, "privacy.clipping")
        _check_positive("privacy.physical_batch_size", self.physical_batch_size, allow_zero=True)
        for key in ("epsilon", "delta"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value)
            ):
                raise PrivacyError(f"privacy.{key}: {shown(value)} is not a number")
        if self.epsilon is not None and not 0 < self.epsilon < math.inf:
            raise PrivacyError(
                f"privacy.epsilon: {self.epsilon!r} gives no guarantee; --dp-epsilon must be > 0 "
                "and finite (typical: 1 to 10; smaller is more private)"
            )
        if self.delta is not None and not 0 < self.delta < 1:
            raise PrivacyError(
                f"privacy.delta: {self.delta!r} is not allowed; --dp-delta must be in (0, 1) and "
                "below 1/N for N training rows (default: 1/N^1.1)"
            )
        if self.delta is not None and self.epsilon is None:
            raise PrivacyError("privacy.delta is set without privacy.epsilon; pass --dp-epsilon")

    @property
    def enabled(self) -> bool:
        """Whether training is differentially private."""
        return self.epsilon is not None


@dataclass
class RunConfig:
    """Everything that defines one fine-tuning run."""

    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    # The keys ("train.epochs") given in a YAML file, as flags or as finetune keywords; the
    # others may be chosen by data size (train/sizing.py). Not part of the saved config.
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict (enums as their values)."""
        out: dict[str, Any] = {}
        for section in dataclasses.fields(self):
            if section.name not in _SECTIONS:
                continue
            values = dataclasses.asdict(getattr(self, section.name))
            out[section.name] = {
                k: (v.value if isinstance(v, enum.Enum) else v) for k, v in values.items()
            }
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> RunConfig:
        """Build from a nested dict; unknown sections or keys are errors naming the key."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with sections {_section_names()}")
        sections: dict[str, Any] = {}
        for name, value in raw.items():
            section_type = _SECTIONS.get(name)
            if section_type is None:
                raise ConfigError(
                    f"{source}: unknown section {shown(name)}. Choose between {_section_names()}"
                )
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: section {shown(name)} must be a mapping of keys")
            known = {f.name: f for f in dataclasses.fields(section_type)}
            for key, item in value.items():
                if key not in known:
                    raise ConfigError(
                        f"{source}: unknown key {name}.{shortened(str(key))}. "
                        f"Allowed keys: {sorted(known)}"
                    )
                _check_type(f"{name}.{key}", item, known[key])
            try:
                sections[name] = section_type(**value)
            except TypeError as e:
                raise ConfigError(f"{source}: section {shown(name)}: {shortened(str(e))}") from None
        given = frozenset(f"{name}.{key}" for name, value in raw.items() for key in value or {})
        return cls(**sections, explicit=given)

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> RunConfig:
        """A copy with ``{"train": {"epochs": 2}}``-style overrides applied (CLI flags)."""
        merged = self.to_dict()
        for section, values in overrides.items():
            merged[section].update(values)
        given = frozenset(f"{s}.{k}" for s, values in overrides.items() for k in values)
        return dataclasses.replace(
            RunConfig.from_dict(merged, source="flags"), explicit=self.explicit | given
        )


_SECTIONS: dict[str, type] = {
    "task": TaskConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "privacy": PrivacyConfig,
}


_CORE_SECTIONS = ("task", "data", "model", "train")


def config_flags() -> list[tuple[str, str, dataclasses.Field[Any]]]:
    """(flag, section, field) for every configuration field: ``--dp-epsilon`` for
    ``privacy.epsilon`` (its ``flag`` metadata), else ``--`` and the field's name."""
    return [
        (flag, section, f)
        for section, config_type in _SECTIONS.items()
        for flag, f in settings_flags(config_type)
    ]


def _section_names() -> str:
    """The core sections every run has, then the optional feature sections (privacy ...)."""
    features = sorted(set(_SECTIONS) - set(_CORE_SECTIONS))
    extra = f" or the feature sections {features}" if features else ""
    return f"{sorted(_CORE_SECTIONS)}{extra}"


def _check_type(key: str, value: Any, spec: dataclasses.Field[Any]) -> None:
    default = spec.default if spec.default is not dataclasses.MISSING else None
    if value is None or default is None or isinstance(default, enum.Enum):
        return
    expected: type | tuple[type, ...] = type(default)
    if expected is float:
        expected = (int, float)
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
        raise ConfigError(f"{key}: {shown(value)} is not a {type(default).__name__}")


_MAX_CONFIG_BYTES = 1 << 20  # a run configuration is a few dozen lines
_MAX_CONFIG_DEPTH = 8  # sections of scalars; deeper structures are never valid
_MAX_NUMBER_CHARS = 100  # a 5,000-digit integer is refused before int() sees it


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader without aliases (no alias bombs), with bounded nesting and integer size."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a trustune config file; write the "
                "value out", self.peek_event().start_mark,
            )  # fmt: skip
        self._depth += 1
        try:
            if self._depth > _MAX_CONFIG_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {_MAX_CONFIG_DEPTH} levels",
                    self.peek_event().start_mark,
                )  # fmt: skip
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        if len(str(node.value)) > _MAX_NUMBER_CHARS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(str(node.value))} characters is too large",
                node.start_mark,
            )  # fmt: skip
        return super().construct_yaml_int(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.construct_yaml_int)
# YAML 1.1 (PyYAML) reads `1e-4` and `5e5` as strings: it wants a dot in the mantissa and a sign
# in the exponent. YAML 1.2 and every other reader take them as floats, and so do we.
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line from a YAML error: its problem and line, without the echoed source lines."""
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1})" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{where} is not valid YAML: {shortened(' '.join(str(problem).split()), limit=200)}"


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML run configuration; every key must be known."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    size = p.stat().st_size
    if size > _MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {p} has {size:,} bytes; a run configuration is a few lines (at most "
            f"{_MAX_CONFIG_BYTES:,} bytes)"
        )
    try:
        raw = yaml.load(p.read_text(encoding="utf-8-sig"), Loader=_ConfigLoader) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p}{_yaml_problem(e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte {e.start})") from None
    return RunConfig.from_dict(raw, source=str(p))
