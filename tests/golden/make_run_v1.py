"""How tests/golden/run_v1 was made: trustune 0.1.0 (manifest format 1), commit b39e96b.

Run with that release to remake it (a later release writes a later format):
    python tests/golden/make_run_v1.py tests/golden/run_v1
"""

import re
import shutil
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

import trustune
from trustune.data.demo import write_demo_dataset

out = Path(sys.argv[1])
work = Path("/tmp/golden/work")
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
train, test = write_demo_dataset(work / "data", rows=120, seed=5)
words: set[str] = set()
for line in Path(train).read_text().splitlines():
    words.update(re.findall(r"[a-z]+", line.lower()))
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)[:400]]
model_dir = work / "base"
model_dir.mkdir()
(model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
BertTokenizerFast(vocab_file=str(model_dir / "vocab.txt"), do_lower_case=True).save_pretrained(
    model_dir
)
torch.manual_seed(0)
config = BertConfig(
    vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=64,
)  # fmt: skip
BertForSequenceClassification(config).save_pretrained(model_dir, safe_serialization=True)
run = work / "run"
trustune.finetune(
    train, model=str(model_dir), output=run, epochs=1, batch_size=16, lr=1e-3, max_length=48,
    measure_latency=False,
)  # fmt: skip
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(run, out, ignore=shutil.ignore_patterns("checkpoints"))
