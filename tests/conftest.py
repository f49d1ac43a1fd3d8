"""Shared fixtures: a tiny random BERT checkpoint, small data files, a trained tiny run."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "sst2"


def minilm_folder() -> Path:
    from trustune.models import resolve_model

    return Path(resolve_model("minilm").location)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 2-layer BERT (hidden 32) with the real MiniLM tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    source = minilm_folder()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    import torch

    # Seeded, so the tiny model is the same whichever tests ran before it was built.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small demo data set (train, test) written by trustune's own generator."""
    from trustune.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("demo"), rows=160, seed=3)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, content: str) -> Path:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def tiny_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, demo_files: tuple[Path, Path]
) -> Path:
    """A finished run of the tiny model on the demo data (shared by read-only tests)."""
    import trustune

    output = tmp_path_factory.mktemp("runs") / "tiny"
    trustune.finetune(
        demo_files[0], model=str(tiny_model), output=output, epochs=2, batch_size=16, lr=1e-3,
        measure_latency=False,
    )  # fmt: skip
    return output


_WORDS = [
    "cat", "dog", "man", "woman", "plays", "guitar", "runs", "fast", "slow", "eats", "food",
    "red", "blue", "car", "drives",
]  # fmt: skip


def _pair_rows(n: int, seed: int) -> list[tuple[str, str, float]]:
    """Sentence pairs scored by how many words they share (0 to 5): learnable, fractional."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a = [rng.choice(_WORDS) for _ in range(6)]
        b = [w if rng.random() < 0.5 else rng.choice(_WORDS) for w in a]
        same = sum(x == y for x, y in zip(a, b, strict=True))
        rows.append((" ".join(a), " ".join(b), round(same / 6 * 5 + rng.uniform(-0.2, 0.2), 3)))
    return rows


def _write_pairs(path: Path, rows: list[tuple[str, str, float]], header: str) -> Path:
    lines = [header] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pair_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Scored sentence pairs (train, dev) as TSV: sentence1, sentence2, score."""
    folder = tmp_path_factory.mktemp("pairs")
    header = "sentence1\tsentence2\tscore"
    return (
        _write_pairs(folder / "train.tsv", _pair_rows(160, 0), header),
        _write_pairs(folder / "dev.tsv", _pair_rows(40, 1), header),
    )


@pytest.fixture(scope="session")
def regression_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, pair_files: tuple[Path, Path]
) -> Path:
    """A finished text-pair regression run of the tiny model (shared by read-only tests)."""
    import trustune

    output = tmp_path_factory.mktemp("runs") / "sts"
    trustune.finetune(
        pair_files[0], validation=pair_files[1], model=str(tiny_model), output=output, epochs=2,
        batch_size=16, lr=1e-3, measure_latency=False, progress=False,
    )  # fmt: skip
    return output


# -- causal language models (the causal-lm task) ------------------------------------------------

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def make_chat_tokenizer(*, pad: bool) -> Any:
    """A byte-level BPE tokenizer trained on a few strings, GPT-2 style: no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    backend.train_from_iterator(["hello world, how are you?", "the capital is paris"] * 3, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", chat_template=CHATML,
        **({"pad_token": "<|endoftext|>"} if pad else {}),
    )  # fmt: skip


def save_tiny_llama(folder: Path, *, positions: int) -> Path:
    """A random 2-layer Llama (hidden 32, tied embeddings, ``positions`` of context) saved as
    safetensors in ``folder``, with a ChatML byte-level tokenizer that has no pad token."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_chat_tokenizer(pad=False)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=positions,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`save_tiny_llama` with a context of 256 tokens."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-chat-model"), positions=256)
