"""The causal-lm task end to end on a tiny random Llama: train (full and LoRA) from a chat file,
the run, generate and chat from the CLI and Python, evaluation, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from trustune.encoding import IGNORE_INDEX
from trustune.tasks.causal_lm import CausalLM, token_losses

ENV_KEYS = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *args], capture_output=True, text=True,
        input=stdin, env={**os.environ, **ENV_KEYS}, timeout=600,
    )  # fmt: skip


def _conversations(n: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": f"hello {i % 3}"},
                {"role": "assistant", "content": "the capital is paris"},
            ]
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chat-data") / "convs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _conversations(60)) + "\n")
    return path


@pytest.fixture(scope="module")
def chat_run(
    tiny_chat_model: Path, chat_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    run = tmp_path_factory.mktemp("chat-runs") / "run"
    done = cli(
        "train", "--data", str(chat_file), "--model", str(tiny_chat_model), "--output", str(run),
        "--max-length", "64", "--epochs", "3", "--lr", "3e-3", "--validation-fraction", "0.2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "task: causal-lm (detected from the file's columns)" in done.stdout + done.stderr
    return run


def test_token_loss_counts_only_the_labelled_tokens() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 3] = 4  # predicted from position 2
    summed, counted = token_losses(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[0, 2:3], torch.tensor([4]))
    assert counted.tolist() == [1, 0]
    assert torch.allclose(summed[0], expected) and summed[1] == 0
    task = CausalLM(data_format="chat")
    assert torch.allclose(task.loss(logits, labels), torch.stack([expected, torch.tensor(0.0)]))


def test_the_run_records_the_task_and_loads_in_plain_transformers(chat_run: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((chat_run / "trustune.json").read_text())
    assert manifest["task"] == "causal-lm"
    assert manifest["generation"]["format"] == "chat"
    assert manifest["config"]["train"]["batch_size"] == 8  # the task's defaults
    history = manifest["training"]["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    metrics = json.loads((chat_run / "metrics.json").read_text())["validation"]
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["loss"], rel=1e-6)
    assert metrics["tokens"] > 0 and metrics["speed"]["tokens_per_s"] > 0
    model = AutoModelForCausalLM.from_pretrained(chat_run / "model", use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(chat_run / "model")
    assert type(model).__name__ == "LlamaForCausalLM" and tokenizer.chat_template
    assert not list((chat_run / "model").glob("*.bin"))
    assert (chat_run / "report.html").is_file()


def test_python_generate_chat_stream_and_batching(chat_run: Path) -> None:
    import trustune

    generator = trustune.load(chat_run)
    assert isinstance(generator, trustune.TextGenerator)
    prompts = ["hello 1", "a much longer prompt than the other one", "hi"]
    batched = generator.generate(prompts, max_new_tokens=6, batch_size=3)
    alone = [generator.generate(p, max_new_tokens=6)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in alone]  # left padding changes nothing
    assert all(g.tokens <= 6 and g.finish_reason in ("stop", "length") for g in batched)
    reply = generator.chat([{"role": "user", "content": "hello 0"}], max_new_tokens=6)
    streamed = "".join(generator.stream([{"role": "user", "content": "hello 0"}], max_new_tokens=6))
    assert streamed == reply.text
    sampled = [generator.generate("hi", max_new_tokens=6, temperature=1.0, seed=3)[0].text
               for _ in range(2)]  # fmt: skip
    assert sampled[0] == sampled[1]  # the seed fixes the sample
    with pytest.raises(trustune.TrustuneError, match="unknown generation setting"):
        generator.generate("hi", beams=4)
    with pytest.raises(trustune.TrustuneError, match="role"):
        generator.chat([{"role": "robot", "content": "hi"}])


def test_cli_generate_chat_evaluate_and_predict(
    chat_run: Path, chat_file: Path, tmp_path: Path
) -> None:
    done = cli("generate", str(chat_run), "--prompt", "hello 1", "--max-new-tokens", "5", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    assert record["prompt"] == "hello 1" and record["tokens"] <= 5
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello 1\n\nhello 2\n")
    out = tmp_path / "answers.jsonl"
    done = cli("generate", str(chat_run), "--input", str(prompts), "--output", str(out),
               "--max-new-tokens", "4")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["prompt"] for x in out.read_text().splitlines()] == ["hello 1", "hello 2"]
    done = cli("chat", str(chat_run), "--max-new-tokens", "4", stdin="hello 1\n/reset\nhi\n/exit\n")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2  # one answer per message
    done = cli("evaluate", str(chat_run), "--data", str(chat_file))
    assert done.returncode == 0, done.stderr
    assert "perplexity" in done.stdout
    done = cli("predict", str(chat_run), "--text", "hi")
    assert done.returncode == 2 and "use `trustune generate`" in done.stderr
    done = cli("generate", str(chat_run), "--prompt", "hi", "--max-new-tokens", "500")
    assert done.returncode == 2 and "fills the run's context of 64 tokens" in done.stderr


def test_lora_trains_adapters_and_saves_them_merged(
    tiny_chat_model: Path, chat_file: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    run = tmp_path / "lora"
    done = cli(
        "train", "--task", "chat", "--data", str(chat_file), "--model", str(tiny_chat_model),
        "--output", str(run), "--max-length", "64", "--epochs", "1", "--lora", "--lora-r", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((run / "trustune.json").read_text())
    lora = manifest["generation"]["lora"]
    assert lora["r"] == 4 and lora["alpha"] == 8 and lora["merged"] is True
    assert "q_proj" in lora["target_modules"]
    assert manifest["config"]["train"]["lr"] == pytest.approx(2e-4)  # LoRA's default
    assert not list((run / "model").glob("adapter_*"))  # merged: a plain checkpoint
    base = AutoModelForCausalLM.from_pretrained(tiny_chat_model, use_safetensors=True)
    tuned = AutoModelForCausalLM.from_pretrained(run / "model", use_safetensors=True)
    base_q = base.model.layers[0].self_attn.q_proj.weight
    tuned_q = tuned.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(base_q, tuned_q)  # the adapter's update is in the weights
    # the embeddings carry no adapter: LoRA leaves them as they were
    assert torch.equal(base.model.embed_tokens.weight, tuned.model.embed_tokens.weight)


@pytest.mark.parametrize(
    ("rows", "flags", "message"),
    [
        ([{"messages": [{"role": "user", "content": "hi"}]}], [], "no assistant"),
        ([{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}],
         [], "unknown role"),
        ([{"sentence": "hello", "label": "a"}], ["--task", "chat"], "no conversations or texts"),
    ],
)  # fmt: skip
def test_bad_chat_data_is_a_one_line_error(
    rows: list[dict[str, Any]], flags: list[str], message: str, tiny_chat_model: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows * 20) + "\n")
    done = cli("train", "--data", str(path), "--model", str(tiny_chat_model), "--output",
               str(tmp_path / "run"), *flags)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_an_encrypted_chat_run_generates_with_its_key(chat_run: Path, tmp_path: Path) -> None:
    import trustune

    key = tmp_path / "run.key"
    assert cli("keygen", "--output", str(key)).returncode == 0
    sealed = tmp_path / "sealed"
    done = cli("encrypt", str(chat_run), "--key-file", str(key), "--output", str(sealed))
    assert done.returncode == 0, done.stderr
    assert not list((sealed / "model").glob("*.safetensors"))  # no plaintext weights
    plain = trustune.load(chat_run).generate("hello 1", max_new_tokens=5)[0].text
    assert trustune.load(sealed, key=key).generate("hello 1", max_new_tokens=5)[0].text == plain
    done = cli("generate", str(sealed), "--prompt", "hello 1", "--max-new-tokens", "5")
    assert done.returncode == 2 and "encrypted" in done.stderr


def test_docs_chat_commands_run_as_written(
    tiny_chat_model: Path, chat_file: Path, tmp_path: Path
) -> None:
    """docs/chat.md's commands through the real CLI (the tiny model, small files)."""
    import os
    import shlex
    import shutil

    from test_docs_commands import shell_lines

    docs = Path(__file__).resolve().parents[1] / "docs" / "chat.md"
    commands = [c for c in shell_lines(docs) if c.startswith("trustune ")]
    assert len(commands) == 6
    shutil.copy(chat_file, tmp_path / "convs.jsonl")
    shutil.copy(chat_file, tmp_path / "held_out.jsonl")
    (tmp_path / "prompts.txt").write_text("hello 1\n\nhello 2\n")
    extra = {
        "train": ["--model", str(tiny_chat_model), "--max-length", "64", "--quiet", "--no-speed"],
        "generate": ["--max-new-tokens", "4"],
        "chat": ["--max-new-tokens", "4"],
        "evaluate": ["--no-speed"],
    }
    for command in commands:
        words = shlex.split(command)
        done = subprocess.run(
            [sys.executable, "-m", "trustune.cli.main", *words[1:], *extra[words[1]]],
            cwd=tmp_path, capture_output=True, text=True, input="hi\n/exit\n",
            env={**os.environ, **ENV_KEYS}, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr}"
    assert (tmp_path / "runs/chat-lora/model/config.json").is_file()
    assert (tmp_path / "answers.jsonl").read_text().count("\n") == 2
