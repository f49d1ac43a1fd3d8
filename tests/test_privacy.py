"""DP-SGD: the accountant against published values, the DP step against the plain one,
training, resume (ε continues) and the configurations that are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("opacus")

import trustune
from trustune.config import Accountant, Precision, PrivacyConfig, RunConfig
from trustune.encoding import Encoded
from trustune.errors import ConfigError, PrivacyError, TrainingInterrupted
from trustune.privacy import default_delta, epsilon_spent, noise_for_epsilon
from trustune.privacy.engine import (
    PrivacyPlan,
    PrivateTraining,
    check_sampler,
    physical_batches,
    plan_privacy,
    private_precision,
)
from trustune.progress import Progress


@pytest.mark.parametrize(
    "module",
    ["trustune.privacy", "trustune.privacy.accountant", "trustune.privacy.engine",
     "trustune.privacy.redact", "trustune.privacy.audit", "trustune.privacy.report",
     "trustune.privacy.bookkeeping", "trustune.privacy.step"],
)  # fmt: skip
def test_every_public_name_exists(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)


# -- the accountant -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accountant", "steps", "expected"),
    # pinned by Opacus's own tests (accountants_test.py), steps written as they write them
    [("rdp", int(90 / 0.04), 7.32911117143), ("prv", int(90 // 0.04), 6.777395712150674)],
)
def test_accountant_reproduces_published_values(
    accountant: str, steps: int, expected: float
) -> None:
    eps = epsilon_spent(
        noise_multiplier=1.5, sample_rate=0.04, steps=steps, delta=1e-5,
        accountant=accountant,
    )  # fmt: skip
    assert eps == pytest.approx(expected, abs=1e-3)


def test_noise_calibration_matches_published_sigma_and_inverts_epsilon() -> None:
    sigma = noise_for_epsilon(
        target_epsilon=8, delta=1e-5, sample_rate=0.04, steps=2250, accountant=Accountant.RDP
    )
    assert sigma == pytest.approx(1.416, abs=1e-3)  # Opacus: get_noise_multiplier, 90 epochs
    eps = epsilon_spent(
        noise_multiplier=sigma, sample_rate=0.04, steps=2250, delta=1e-5, accountant="rdp"
    )
    assert 7.9 < eps <= 8.0


def test_epsilon_rises_with_steps_and_falls_with_noise() -> None:
    def eps(sigma: float, steps: int) -> float:
        return epsilon_spent(noise_multiplier=sigma, sample_rate=0.01, steps=steps, delta=1e-5)

    assert eps(1.0, 100) < eps(1.0, 1000) < eps(1.0, 5000)
    assert eps(0.8, 1000) > eps(1.2, 1000) > eps(2.0, 1000)
    assert epsilon_spent(noise_multiplier=1.0, sample_rate=0.01, steps=0, delta=1e-5) == 0.0


def test_default_delta_is_below_one_over_n() -> None:
    assert default_delta(60_000) == pytest.approx(60_000**-1.1)
    assert default_delta(100) < 1 / 100


# -- one DP step ------------------------------------------------------------------------------


def _tiny_bert() -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, num_labels=3, attn_implementation="eager",
    )  # fmt: skip
    return BertForSequenceClassification(config)


_IDS = [[1, *range(10, 10 + n), 2] for n in (3, 7, 5, 9, 4, 6)]
_LABELS = [0, 1, 2, 1, 0, 2]


def _plan(
    clipping: str, *, sigma: float = 0.0, clip: float = 1e6, freeze: bool = True
) -> PrivacyPlan:
    return PrivacyPlan(
        target_epsilon=8, delta=1e-5, delta_rule="given", accountant="rdp", clipping=clipping,
        max_grad_norm=clip, noise_multiplier=sigma, sample_rate=0.5, logical_batch_size=6,
        physical_batch_size=4, steps_per_epoch=2, planned_steps=2, train_rows=12,
        freeze_embeddings=freeze,
    )  # fmt: skip


def _dp_step(base: Any, plan: PrivacyPlan, **options: bool) -> Any:
    model = copy.deepcopy(base).train()
    private = PrivateTraining(plan, **options)
    private.freeze(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    private.attach(model, optimizer)
    batches = physical_batches(
        list(range(6)),
        encoded=Encoded(input_ids=_IDS, truncated=0),
        labels=_LABELS,
        pad_id=0,
        physical_batch_size=4,
    )
    private.step(batches)
    return model


def _plain_step(base: Any, *, freeze: bool) -> Any:
    model = copy.deepcopy(base).train()
    if freeze:
        model.bert.embeddings.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    batch = physical_batches(
        list(range(6)),
        encoded=Encoded(input_ids=_IDS, truncated=0),
        labels=_LABELS,
        pad_id=0,
        physical_batch_size=6,
    )[0]
    labels = batch.pop("labels")
    torch.nn.functional.cross_entropy(model(**batch).logits, labels).backward()
    optimizer.step()
    return model


def _max_difference(a: Any, b: Any) -> float:
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


@pytest.mark.parametrize("clipping", ["ghost", "hooks"])
@pytest.mark.parametrize("freeze", [True, False])
def test_zero_noise_huge_clip_equals_the_plain_step(clipping: str, freeze: bool) -> None:
    base = _tiny_bert()
    private = _dp_step(base, _plan(clipping, freeze=freeze))
    plain = _plain_step(base, freeze=freeze)
    assert _max_difference(private, plain) < 1e-6
    assert _max_difference(private, base) > 1e-3  # the step did move the weights


@pytest.mark.parametrize("freeze", [True, False])
def test_ghost_clipping_equals_materialised_per_example_clipping(freeze: bool) -> None:
    # a small C clips every example: trustune's one-pass ghost norms against Opacus's hooks
    base = _tiny_bert()
    ghost = _dp_step(base, _plan("ghost", clip=0.05, freeze=freeze))
    hooks = _dp_step(base, _plan("hooks", clip=0.05, freeze=freeze))
    assert _max_difference(ghost, hooks) < 1e-6
    assert _max_difference(ghost, _plain_step(base, freeze=freeze)) > 1e-4


@pytest.mark.parametrize("clip", [0.05, 1e6])
def test_book_keeping_equals_the_second_backward_pass(clip: float) -> None:
    # the clipped sum contracted from the norm pass, against Opacus's two passes and
    # trustune's lean first pass followed by a second backward pass
    base = _tiny_bert()
    model = copy.deepcopy(base).train()
    private = PrivateTraining(_plan("ghost", clip=clip))
    private.freeze(model)
    private.attach(model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1))
    assert private.bookkeeper is not None  # every trainable layer is a Linear or a LayerNorm
    private.detach()
    kept = _dp_step(base, _plan("ghost", clip=clip))
    second_pass = _dp_step(base, _plan("ghost", clip=clip), book_keeping=False)
    opacus = _dp_step(base, _plan("ghost", clip=clip), lean_first_pass=False)
    assert _max_difference(kept, second_pass) < 1e-6
    assert _max_difference(kept, opacus) < 1e-6
    assert _max_difference(kept, base) > 1e-4


def test_bitfit_under_dp_moves_only_biases_norms_and_head() -> None:
    # frozen weights: book-keeping skips their matmuls and must still give the exact clipped sum
    from trustune.config import Trainable
    from trustune.train.setup import apply_trainable

    base = _tiny_bert()
    total = sum(p.numel() for p in base.parameters())
    assert apply_trainable(base, Trainable.BITFIT) < total / 5
    kept = _dp_step(base, _plan("ghost", clip=0.05))
    second_pass = _dp_step(base, _plan("ghost", clip=0.05), book_keeping=False)
    hooks = _dp_step(base, _plan("hooks", clip=0.05))
    assert _max_difference(kept, second_pass) < 1e-6
    assert _max_difference(kept, hooks) < 1e-6
    moved = {
        name for (name, p), q in zip(kept.named_parameters(), base.parameters(), strict=True)
        if (p - q).abs().max().item() > 0
    }  # fmt: skip
    assert moved and all(
        n.endswith(("bias", "LayerNorm.weight")) or n.startswith("classifier") or ".pooler." in n
        for n in moved
    ), moved
    assert "bert.encoder.layer.0.attention.self.query.weight" not in moved


def test_noise_has_the_calibrated_scale() -> None:
    base = _tiny_bert()
    clean = _dp_step(base, _plan("ghost", clip=0.1))
    noisy = _dp_step(base, _plan("ghost", sigma=2.0, clip=0.1))
    weight = "classifier.weight"
    delta = dict(noisy.named_parameters())[weight] - dict(clean.named_parameters())[weight]
    # lr 1, noise std sigma * C / expected batch = 2 * 0.1 / 6
    assert delta.std().item() == pytest.approx(2.0 * 0.1 / 6, rel=0.35)


def test_empty_sample_takes_a_noise_only_step_and_detach_leaves_a_plain_model() -> None:
    base = _tiny_bert()
    model = copy.deepcopy(base).train()
    private = PrivateTraining(_plan("ghost", sigma=1.0, clip=0.1))
    private.freeze(model)
    private.attach(model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1))
    assert private.step([]) == (0.0, 0)
    assert private.steps == 1 and private.epsilon() > 0
    assert _max_difference(model, base) > 1e-4  # the noise moved the weights
    private.detach()
    assert not hasattr(model, "autograd_grad_sample_hooks")
    model.eval()
    model(input_ids=torch.tensor([[1, 5, 2]])).logits.sum().backward()  # no Opacus hook fires


# -- configuration and refusals --------------------------------------------------------------


def test_privacy_section_maps_onto_config_and_flags(tmp_path: Path) -> None:
    from trustune.cli.main import build_parser

    path = tmp_path / "run.yaml"
    path.write_text("privacy:\n  epsilon: 3\n  accountant: rdp\n", encoding="utf-8")
    config = trustune.load_config(path)
    assert config.privacy.enabled and config.privacy.accountant is Accountant.RDP
    assert RunConfig.from_dict(config.to_dict()) == config
    args = build_parser().parse_args(
        ["train", "--dp-epsilon", "8", "--dp-delta", "1e-6", "--accountant", "prv",
         "--redact-pii", "--max-grad-norm", "0.5"]
    )  # fmt: skip
    assert vars(args)["privacy.epsilon"] == 8.0
    assert vars(args)["privacy.delta"] == 1e-6
    assert vars(args)["privacy.redact_pii"] is True
    assert vars(args)["train.max_grad_norm"] == 0.5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epsilon": 0}, "privacy.epsilon: 0 gives no guarantee; --dp-epsilon must be > 0"),
        ({"epsilon": -1.0}, "--dp-epsilon must be > 0"),
        ({"epsilon": "eight"}, "privacy.epsilon: 'eight' is not a number"),
        ({"epsilon": 8, "delta": 1.5}, "--dp-delta must be in (0, 1)"),
        ({"delta": 1e-6}, "privacy.delta is set without privacy.epsilon"),
    ],
)
def test_bad_privacy_settings_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(PrivacyError) as e:
        RunConfig.from_dict({"privacy": raw})
    assert message in str(e.value)


def test_unknown_accountant_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Choose between \['prv', 'rdp'\]"):
        RunConfig.from_dict({"privacy": {"accountant": "moments"}})


def test_delta_at_or_above_one_over_n_is_refused() -> None:
    config = RunConfig(privacy=PrivacyConfig(epsilon=8, delta=0.01))
    with pytest.raises(PrivacyError, match=r"--dp-delta 0.01 is not below 1/N = 0.01 for N=100"):
        plan_privacy(config, train_rows=100)
    plan = plan_privacy(RunConfig(privacy=PrivacyConfig(epsilon=8)), train_rows=1000)
    assert plan.delta == pytest.approx(1000**-1.1) and plan.delta_rule == "1/N^1.1"


def test_custom_samplers_and_bf16_are_refused() -> None:
    weighted = torch.utils.data.WeightedRandomSampler([0.1, 0.9], num_samples=2)
    with pytest.raises(
        PrivacyError, match=r"WeightedRandomSampler .* breaks the privacy accounting"
    ):
        check_sampler(weighted)
    with pytest.raises(PrivacyError, match="--precision bf16 is refused with --dp-epsilon"):
        private_precision(Precision.BF16)
    assert private_precision(Precision.AUTO) is Precision.FP32


# -- training and resume ---------------------------------------------------------------------


def _train(data: Path, model: Path, output: Path, **options: Any) -> trustune.Run:
    config = RunConfig.from_dict(
        {
            "data": {"train_file": str(data)},
            "model": {"name": str(model)},
            "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, **options.pop("train", {})},
            "privacy": {"epsilon": 8, **options.pop("privacy", {})},
        }
    )
    return trustune.finetune(config=config, output=output, measure_latency=False, **options)


def test_dp_run_records_its_budget(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    run = _train(demo_files[0], tiny_model, tmp_path / "dp")
    privacy = run.manifest.privacy
    assert privacy is not None
    for key in ("epsilon", "delta", "accountant", "noise_multiplier", "max_grad_norm",
                "sample_rate", "steps"):  # fmt: skip
        assert getattr(privacy, key) is not None, key
    assert privacy.accountant == "prv" and privacy.dp is True
    assert privacy.steps == run.manifest.training.steps
    assert privacy.epsilon is not None and 0 < privacy.epsilon <= 8.0 + 1e-6
    assert "validation set only" in str(privacy.selection)
    assert privacy.epsilon == pytest.approx(
        epsilon_spent(
            noise_multiplier=privacy.noise_multiplier, sample_rate=privacy.sample_rate,
            steps=privacy.steps, delta=privacy.delta,
        ), abs=1e-3,
    )  # fmt: skip
    epsilons = [h["epsilon"] for h in run.manifest.training.history]
    assert len(epsilons) == 2 and 0 < epsilons[0] < epsilons[1]
    assert "secret" not in json.dumps(run.manifest.to_dict())
    assert "privacy" not in run.manifest.training.extra
    report = (run.path / "report.html").read_text(encoding="utf-8")
    assert "Privacy" in report and "DP-SGD" in report


def test_resume_continues_epsilon_and_noise(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustune.privacy.engine as engine

    # the straight run gets the interrupted run's secret; the resumed one must restore it
    secrets = iter([b"\x07" * 8, b"\x09" * 8, b"\x07" * 8])
    monkeypatch.setattr(engine.os, "urandom", lambda n: next(secrets))

    class StopAt(Progress):
        def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
            self.steps = getattr(self, "steps", 0) + amount
            self.epsilon = fields.get("epsilon")
            if self.steps == 11:
                raise KeyboardInterrupt

    stopper = StopAt()
    with pytest.raises(TrainingInterrupted):
        _train(demo_files[0], tiny_model, tmp_path / "resumed", progress=stopper)
    assert stopper.epsilon is not None and stopper.epsilon > 0
    resumed = trustune.finetune(output=tmp_path / "resumed", resume=True, measure_latency=False)
    straight = _train(demo_files[0], tiny_model, tmp_path / "straight")
    spent, expected = resumed.manifest.privacy, straight.manifest.privacy
    assert spent is not None and expected is not None
    assert spent.steps == expected.steps and spent.epsilon == expected.epsilon
    assert spent.accountant_history == (
        [expected.noise_multiplier, expected.sample_rate, expected.steps],
    )
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "resumed" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_changed_training_data_is_refused(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    data = tmp_path / "train.csv"
    data.write_text(demo_files[0].read_text(encoding="utf-8"), encoding="utf-8")

    class StopAt(Progress):
        def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        _train(data, tiny_model, tmp_path / "run", progress=StopAt())
    with data.open("a", encoding="utf-8") as f:
        f.write("one more ticket about my invoice,billing\n")
    with pytest.raises(PrivacyError, match="a DP run's ε is accounted for one fixed training set"):
        trustune.finetune(output=tmp_path / "run", resume=True, measure_latency=False)
