"""Compression benchmark: every ``trustune compress`` method against the fp32 parent and the
plain ONNX Runtime dynamic-int8 baseline, on the SST-2 872-row test set, in one run.

What it measures
----------------
The default model (all-MiniLM-L6-v2) is fine-tuned inside the benchmark on a seeded
``--train-rows`` slice of ``../shared/data/sst2/train.tsv`` (or ``--parent RUN`` is used). Each
method compresses it with the guard measured on a seeded ``--dev-rows`` slice of ``dev.tsv``
(``--force``: a result beyond ``--max-drop`` is still written and measured, and the table
says so). Beside them:

* **fp32**: the parent as ``trustune.load`` opens it (PyTorch, fp32 weights; inference in
  fp32);
* **baseline**: what a user gets in ten lines: ``torch.onnx.export`` of the parent, then
  ``onnxruntime.quantization.quantize_dynamic`` (QInt8), an ``InferenceSession`` with all graph
  optimisations and ``intra_op_num_threads`` = the cores, the tokenizer called directly.

Every system: accuracy on ``test.tsv`` (872 rows), model size on disk, throughput at batch 32
over the 872 texts in length-sorted batches, and throughput at batch 1 over ``--single``
texts. Timings interleave the systems round by round (``--repeats`` rounds, medians), so noise
from the shared machine falls on all alike. The CPU's features are recorded.

How to run
----------
From the repository root, alone on the machine::

    PYTHONPATH=src .venv/bin/python bench/compress.py                      # ~15 minutes
    PYTHONPATH=src .venv/bin/python bench/compress.py --methods onnx,onnx-int8 --repeats 1 \\
        --train-rows 500                                                   # quick trial

Results go to ``bench/results/compress-<timestamp>.json``; a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import train_sst2 as harness

DEFAULT_METHODS = "onnx,onnx-int8,int8,bf16,prune:0.3,distill:3,distill:3+onnx-int8,auto"


def _slice(src: Path, dst: Path, rows: int | None, seed: int) -> Path:
    import numpy as np

    texts, labels = harness.read_tsv(src)
    if rows is not None and rows < len(labels):
        picked = sorted(np.random.default_rng(seed).choice(len(labels), rows, replace=False))
        texts, labels = [texts[i] for i in picked], [labels[i] for i in picked]
    harness.write_tsv(dst, texts, labels)
    return dst


class Baseline:
    """The plain export + quantize_dynamic user code, run directly."""

    def __init__(self, parent: Path, work: Path) -> None:
        import onnxruntime as ort
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(parent / "model").eval()
        self.tokenizer = AutoTokenizer.from_pretrained(parent / "model")
        enc = self.tokenizer(["a warm-up text", "another"], return_tensors="pt", padding=True)
        names = ["input_ids", "attention_mask", "token_type_ids"]
        fp32, int8 = work / "baseline.onnx", work / "baseline-int8.onnx"
        with torch.no_grad():
            torch.onnx.export(
                model, (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]),
                str(fp32), input_names=names, output_names=["logits"], dynamo=False,
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
                opset_version=17,
            )  # fmt: skip
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        self.path = int8
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = len(__import__("os").sched_getaffinity(0))
        self.session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])

    def logits(self, texts: list[str], batch_size: int) -> Any:
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), 2), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=128,
                return_tensors="np",
            )  # fmt: skip
            feeds = {k: v.astype(np.int64) for k, v in enc.items()}
            out[idx] = self.session.run(["logits"], feeds)[0]
        return out


def _timed(fn: Any, texts: list[str], batch_size: int) -> float:
    fn(texts[: min(len(texts), batch_size * 2)], batch_size)  # warm-up at this shape
    start = time.perf_counter()
    fn(texts, batch_size)
    return len(texts) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=harness.DEFAULT_DATA_DIR)
    p.add_argument("--parent", type=Path, help="a fine-tuned SST-2 run (default: train one)")
    p.add_argument("--train-rows", type=int, default=8000)
    p.add_argument("--dev-rows", type=int, default=1000)
    p.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated; A+B chains")
    p.add_argument("--max-drop", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--single", type=int, default=200, help="texts timed at batch 1")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    import numpy as np

    import trustune
    from trustune.compress import CompressSettings, compress
    from trustune.compress.hardware import cpu_features
    from trustune.compress.runner import model_size

    now = dt.datetime.now(dt.UTC).astimezone()
    out_path = args.out or harness.RESULTS_DIR / f"compress-{now.strftime('%Y%m%dT%H%M%S')}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "compress", "date": now.isoformat(timespec="seconds"),
        "command": harness.command_line(list(sys.argv[1:] if argv is None else argv)),
        "machine": harness.machine_info(), "cpu_features": cpu_features(), "systems": {},
    }  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bench-compress-"))
    dev = _slice(args.data_dir / "dev.tsv", work / "dev.tsv", args.dev_rows, 0)
    test_texts, test_labels = harness.read_tsv(args.data_dir / "test.tsv")
    labels = np.asarray(test_labels)
    parent = args.parent
    if parent is None:
        train = _slice(args.data_dir / "train.tsv", work / "train.tsv", args.train_rows, 0)
        started = time.perf_counter()
        trustune.finetune(
            train, validation=dev, model="minilm", output=work / "parent", epochs=1,
            seed=args.seed, progress=False, measure_latency=False,
        )  # fmt: skip
        report["parent_train_s"] = time.perf_counter() - started
        parent = work / "parent"
    systems: dict[str, Any] = {}
    fp32 = trustune.load(parent)
    systems["fp32"] = {"fn": lambda t, b, m=fp32: m.logits(t, batch_size=b), "path": parent}
    base = Baseline(parent, work)
    systems["baseline"] = {"fn": base.logits, "size": base.path.stat().st_size}
    settings = CompressSettings(max_drop=args.max_drop, force=True)
    for spec in args.methods.split(","):
        source, steps = parent, spec.split("+")
        started = time.perf_counter()
        try:
            for i, step in enumerate(steps):
                target = work / f"{spec.replace(':', '-').replace('+', '_')}-{i}"
                result = compress(source, method=step, output=target, data=dev, settings=settings)
                source = result.path
        except Exception as e:  # record and go on: one failing method must not end the run
            systems[spec] = {"error": f"{type(e).__name__}: {e}"}
            print(f"[compress] {spec}: {systems[spec]['error']}", file=sys.stderr, flush=True)
            continue
        loaded = trustune.load(source)
        systems[spec] = {
            "fn": lambda t, b, m=loaded: m.logits(t, batch_size=b), "path": source,
            "compress_s": time.perf_counter() - started, "guard": result.guard,
            "chosen": (loaded.manifest.compression.settings or {}).get("chosen")
            if loaded.manifest.compression else None,
        }  # fmt: skip
        print(f"[compress] {spec}: guard {result.guard['drop_points']:+.2f} pt", file=sys.stderr)
    live = {k: v for k, v in systems.items() if v.get("fn") is not None}
    for system in live.values():
        logits = system["fn"](test_texts, 32)
        system["accuracy"] = float((logits.argmax(1) == labels).mean())
        if "size" not in system:
            system["size"] = model_size(Path(system["path"]) / "model")
    single = test_texts[: args.single]
    rounds: dict[str, dict[str, list[float]]] = {n: {"b32": [], "b1": []} for n in live}
    for r in range(args.repeats):
        for name, system in live.items():
            rounds[name]["b32"].append(_timed(system["fn"], test_texts, 32))
            rounds[name]["b1"].append(_timed(system["fn"], single, 1))
        print(f"[compress] round {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    for name, system in live.items():
        system["texts_per_s_b32"] = statistics.median(rounds[name]["b32"])
        system["texts_per_s_b1"] = statistics.median(rounds[name]["b1"])
        system["rounds"] = rounds[name]
    ref = live.get("baseline")
    lines = [
        "| system | test acc. | Δ vs fp32 (pt) | size MB | texts/s b32 | texts/s b1 | "
        "× baseline b32 | × baseline b1 | × fp32 b32 | × fp32 b1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, system in systems.items():
        if "error" in system:
            lines.append(f"| {name} | failed: {system['error'][:80]} | | | | | | | | |")
            continue
        fp = live["fp32"]
        lines.append(
            f"| {name} | {system['accuracy']:.2%} | {(system['accuracy'] - fp['accuracy']) * 100:+.2f} | "
            f"{system['size'] / 1e6:.1f} | {system['texts_per_s_b32']:.0f} | "
            f"{system['texts_per_s_b1']:.0f} | "
            f"{system['texts_per_s_b32'] / ref['texts_per_s_b32']:.2f} | "
            f"{system['texts_per_s_b1'] / ref['texts_per_s_b1']:.2f} | "
            f"{system['texts_per_s_b32'] / fp['texts_per_s_b32']:.2f} | "
            f"{system['texts_per_s_b1'] / fp['texts_per_s_b1']:.2f} |"
        )
    report["markdown"] = "\n".join(lines)
    report["systems"] = {
        n: {k: (str(v) if isinstance(v, Path) else v) for k, v in s.items() if k != "fn"}
        for n, s in systems.items()
    }
    report["work_dir"] = str(work)
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print(report["markdown"])
    print(f"\n[compress] results: {out_path} (runs kept in {work})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
