"""The training knobs the SST-2 ablation turns (BENCHMARKS.md): each changes what it claims to.

The head's learning rate and length grouping have their own tests (test_optimizer.py,
test_batching.py); here: the pooler's initialisation, the warm-up, the attention kernel and
the precision as recorded by a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trustune.config import ModelConfig, PoolerInit
from trustune.errors import ConfigError
from trustune.models.pooler import init_pooler
from trustune.train.setup import build_scheduler


def _bert(*, pooler: bool = True) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2,
        initializer_range=0.05,
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    if not pooler:
        model.bert = BertModel(config, add_pooling_layer=False)
    with torch.no_grad():  # a pooler as sentence encoders ship it: tiny weights, zero bias
        if model.bert.pooler is not None:
            model.bert.pooler.dense.weight.mul_(0.01)
            model.bert.pooler.dense.bias.zero_()
    return model


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_reinit_draws_the_pooler_afresh_and_touches_nothing_else() -> None:
    model = _bert()
    before = _snapshot(model)
    assert init_pooler(model, PoolerInit.REINIT) is True
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"bert.pooler.dense.weight"}  # the bias was zero and stays zero
    weight = after["bert.pooler.dense.weight"]
    assert float(weight.std()) == pytest.approx(0.05, rel=0.2)  # initializer_range
    assert float(before["bert.pooler.dense.weight"].std()) < 0.005


def test_pretrained_keeps_the_pooler_and_a_model_without_one_is_left_alone() -> None:
    model = _bert()
    before = _snapshot(model)
    assert init_pooler(model, PoolerInit.PRETRAINED) is False
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    bare = _bert(pooler=False)
    assert init_pooler(bare, PoolerInit.REINIT) is False


def test_pooler_setting_is_checked() -> None:
    assert ModelConfig(pooler="reinit").pooler is PoolerInit.REINIT  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model\.pooler.*pretrained"):
        ModelConfig(pooler="mean")  # type: ignore[arg-type]


@pytest.mark.parametrize(("ratio", "first"), [(0.0, 1e-3), (0.5, 0.0)])
def test_warmup_ratio_sets_the_first_steps(ratio: float, first: float) -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    build_scheduler(optimizer, total_steps=10, warmup_ratio=ratio)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(first)


def test_a_run_records_the_knobs_and_loads_in_plain_transformers(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    from transformers import AutoModelForSequenceClassification

    import trustune

    run = trustune.finetune(
        demo_files[0], model=str(tiny_model), output=tmp_path / "run", epochs=1,
        batch_size=32, lr=1e-3, pooler="reinit", attention="sdpa", precision="fp32",
        warmup_ratio=0.0, progress=False, measure_latency=False,
    )  # fmt: skip
    manifest = json.loads((run.path / "trustune.json").read_text(encoding="utf-8"))
    assert manifest["config"]["model"]["pooler"] == "reinit"
    assert manifest["training"]["attention"] == "sdpa"
    assert manifest["training"]["precision"] == "fp32"
    plain = AutoModelForSequenceClassification.from_pretrained(run.path / "model")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    # the trained pooler started from a fresh draw, not from the checkpoint's
    assert not torch.equal(plain.bert.pooler.dense.weight, base.bert.pooler.dense.weight)
