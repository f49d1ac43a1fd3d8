"""Encryption benchmark: AES-256-GCM throughput and load time of the default model, plain vs sealed.

What it measures, in one run on one machine
-------------------------------------------
``seal`` / ``open`` (crypto layer)
    ``trustune.security.format.seal_stream`` / ``open_stream`` (one thread each, as
    ``encrypt_run`` / ``decrypt_run`` use them) over a buffer in memory
    (default 512 MiB) into a sink that keeps nothing: chunking, nonces, associated data and
    AES-256-GCM, without the disk. Throughput in MB/s (10^6 bytes) of plaintext. Beside it,
    one ``AESGCM.encrypt_into`` call over the whole buffer: the ceiling of the library on this
    machine at this moment, so that the overhead of chunking shows as a ratio.
``open into memory``
    ``SealedRun.read`` of the sealed model file (``trustune.security.opener``): what
    ``trustune.load`` does to an encrypted run (memory map, chunks claimed by parallel threads
    and decrypted straight into the result).
``encrypt run`` / ``decrypt run``
    ``encrypt_run`` / ``decrypt_run`` of a whole run folder holding the default model
    (minilm, ~90 MB of safetensors), file to file with fsync: the figure a user sees.
``load``
    ``trustune.load(run)`` of the plaintext run and ``trustune.load(run, key=...)`` of the same
    run encrypted, alternated, warm (files in the page cache, after warm-up loads), median of
    ``--repeats``. The target is encrypted <= 1.10 x plaintext. Beside it, the same in a new
    process (``import trustune`` + ``load``), which is what one CLI command pays. (A plaintext
    load memory-maps the weights and reads them lazily on first use; an encrypted load must
    decrypt and authenticate every byte up front.) Beside them, ``trustune.load(run,
    public_key=...)`` of a signed copy of the plaintext run: what a server that requires a
    signature pays (verify the signature, hash every file, build the model from those bytes).

Every figure is the median of ``--repeats`` (default 7). The run folder is built from the
bundled model with a new 2-class head (no training needed: loading does not depend on the
weights' values). Results: Markdown on stdout, JSON in ``bench/results/crypto-<time>.json``.

    .venv/bin/python bench/crypto.py [--repeats 7] [--buffer-mib 512]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
MB = 1e6
TARGET_THROUGHPUT_MB_S = 1000.0
TARGET_LOAD_RATIO = 1.10


class _Sink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def median_times(fn: Callable[[], object], repeats: int, *, warmup: int = 1) -> tuple[float, float]:
    """Median wall time and median CPU time (this process, all threads) of ``fn``."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def median_time(fn: Callable[[], object], repeats: int, *, warmup: int = 1) -> float:
    return median_times(fn, repeats, warmup=warmup)[0]


def machine_info() -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    fields = dict(line.split(":", 1) for line in cpuinfo if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    cpu_model = fields.get("model name") or platform.processor() or "unknown"
    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend

    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "aes_ni": "aes" in flags,
        "vaes": "vaes" in flags,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "openssl": backend.openssl_version_text(),
    }


def build_run(root: Path) -> Path:
    """A run folder holding the default model with a 2-class head, as ``trustune train`` lays it out."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trustune.artifact import atomic_write_json, hash_files
    from trustune.models import resolve_model

    source = resolve_model("minilm").location
    run = root / "plain"
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    model.save_pretrained(run / "model", safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(run / "model")
    manifest = {
        "format": "trustune.run", "format_version": 1, "task": "text-classification",
        "labels": ["negative", "positive"], "config": {"data": {"max_length": 128}},
        "text_column": "text", "label_column": "label", "files": hash_files(run),
    }  # fmt: skip
    atomic_write_json(run / "trustune.json", manifest)
    return run


def bench_layer(buffer_mib: int, repeats: int) -> dict[str, float]:
    from trustune.security.format import open_stream, seal_stream
    from trustune.security.keys import generate_key

    key, artifact = generate_key(), os.urandom(16)
    data = os.urandom(buffer_mib << 20)
    sealed = io.BytesIO()
    seal_stream(io.BytesIO(data), sealed, data_key=key, artifact_id=artifact, name="bench")
    sealed_bytes = sealed.getvalue()

    def seal() -> None:
        seal_stream(io.BytesIO(data), _Sink(), data_key=key, artifact_id=artifact, name="bench")

    def open_() -> None:
        open_stream(
            io.BytesIO(sealed_bytes), _Sink(), size=len(sealed_bytes), data_key=key,
            artifact_id=artifact, name="bench",
        )  # fmt: skip

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead, out = AESGCM(key.reveal()), bytearray(len(data) + 16)

    def raw() -> None:  # the ceiling: one library call over the whole buffer, no chunking
        aead.encrypt_into(os.urandom(12), data, None, out)

    raw_s, raw_cpu_s = median_times(raw, repeats)
    seal_s, seal_cpu_s = median_times(seal, repeats)
    open_s, open_cpu_s = median_times(open_, repeats)
    return {
        "bytes": len(data),
        "raw_cpu_s": raw_cpu_s,
        "seal_cpu_s": seal_cpu_s,
        "open_cpu_s": open_cpu_s,
        "raw_s": raw_s,
        "raw_mb_s": len(data) / MB / raw_s,
        "seal_s": seal_s,
        "open_s": open_s,
        "seal_mb_s": len(data) / MB / seal_s,
        "open_mb_s": len(data) / MB / open_s,
    }


def bench_run(root: Path, plain: Path, repeats: int) -> dict[str, Any]:
    import trustune
    from trustune.security import SealedRun, decrypt_run, encrypt_run, generate_key

    key = generate_key()
    size = sum(p.stat().st_size for p in (plain / "model").rglob("*") if p.is_file())
    weights = (plain / "model" / "model.safetensors").stat().st_size
    counter = {"i": 0}

    def timed_into_new_folder(action: Callable[..., Path], source: Path, prefix: str) -> float:
        def once() -> None:
            counter["i"] += 1
            shutil.rmtree(action(source, key=key, output=root / f"{prefix}-{counter['i']}"))

        return median_time(once, repeats)

    encrypt_s = timed_into_new_folder(encrypt_run, plain, "enc")
    sealed = encrypt_run(plain, key=key, output=root / "sealed")
    decrypt_s = timed_into_new_folder(decrypt_run, sealed, "dec")
    manifest = json.loads((sealed / "trustune.json").read_text(encoding="utf-8"))
    opened = SealedRun(sealed, manifest, key)
    open_memory_s = median_time(lambda: opened.read("model/model.safetensors"), repeats)

    plain_times: list[float] = []
    sealed_times: list[float] = []
    for _ in range(2):  # warm-up: imports, page cache
        trustune.load(plain)
        trustune.load(sealed, key=key)
    for _ in range(repeats):  # alternate so drift in machine load hits both alike
        for path, times, kwargs in ((plain, plain_times, {}), (sealed, sealed_times, {"key": key})):
            start = time.perf_counter()
            trustune.load(path, **kwargs)
            times.append(time.perf_counter() - start)
    signed, public_key = signed_copy(plain, root)
    signed_s = median_time(lambda: trustune.load(signed, public_key=public_key), repeats)
    fresh_plain, fresh_sealed = fresh_process_loads(plain, sealed, key, max(3, repeats // 2))
    texts = ["a wonderful, moving film", "dull and far too long"]
    same = bool(
        (
            trustune.load(plain).predict_proba(texts)
            == trustune.load(sealed, key=key).predict_proba(texts)
        ).all()
    )
    plain_load, sealed_load = statistics.median(plain_times), statistics.median(sealed_times)
    return {
        "model_folder_bytes": size,
        "weights_bytes": weights,
        "encrypt_run_s": encrypt_s,
        "decrypt_run_s": decrypt_s,
        "encrypt_run_mb_s": size / MB / encrypt_s,
        "decrypt_run_mb_s": size / MB / decrypt_s,
        "open_weights_in_memory_s": open_memory_s,
        "open_weights_in_memory_mb_s": weights / MB / open_memory_s,
        "load_plain_s": plain_load,
        "load_encrypted_s": sealed_load,
        "load_ratio": sealed_load / plain_load,
        "load_plain_all_s": plain_times,
        "load_encrypted_all_s": sealed_times,
        "same_predictions": same,
        "fresh_process_plain_s": fresh_plain,
        "fresh_process_encrypted_s": fresh_sealed,
        "load_signed_plain_s": signed_s,
    }


def signed_copy(plain: Path, root: Path) -> tuple[Path, Any]:
    """A signed copy of the plaintext run and the public key that verifies it."""
    from trustune.security import generate_signing_key, sign_run

    signed = root / "signed"
    shutil.copytree(plain, signed)
    signer = generate_signing_key()
    sign_run(signed, signer)
    return signed, signer.public_key()


_FRESH = """
import sys, time
start = time.perf_counter()
import trustune
trustune.load(sys.argv[1], key=sys.argv[2] if len(sys.argv) > 2 else None)
print(time.perf_counter() - start)
"""


def fresh_process_loads(plain: Path, sealed: Path, key: Any, repeats: int) -> tuple[float, float]:
    """``import trustune`` + ``trustune.load`` in a new process: what a CLI command pays."""
    from trustune.security import write_key_file

    key_file = write_key_file(sealed.parent / "bench.key", key)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    plain_times, sealed_times = [], []
    for _ in range(repeats):
        for args, times in (
            ([str(plain)], plain_times),
            ([str(sealed), str(key_file)], sealed_times),
        ):
            out = subprocess.run(
                [sys.executable, "-c", _FRESH, *args], capture_output=True, text=True, env=env,
                check=True,
            )  # fmt: skip
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(plain_times), statistics.median(sealed_times)


def markdown(report: dict[str, Any]) -> str:
    m, layer, run = report["machine"], report["layer"], report["run"]
    ok = lambda good: "met" if good else "**not met**"  # noqa: E731
    enc_ok = layer["seal_mb_s"] >= TARGET_THROUGHPUT_MB_S
    load_ok = run["load_ratio"] <= TARGET_LOAD_RATIO
    return "\n".join([
        f"- Date: {report['date']}",
        f"- Machine: {m['cpu_model']}, {m['cpu_count']} cores (AES-NI {m['aes_ni']}, VAES "
        f"{m['vaes']}), load average {', '.join(f'{x:.2f}' for x in m['load_average'])} at start",
        f"- Software: Python {m['python']}, cryptography {m['cryptography']} ({m['openssl']})",
        f"- Command: `{report['command']}` (median of {report['repeats']})",
        "",
        "| measurement | time | throughput | per CPU-second |",
        "|---|---:|---:|---:|",
        f"| raw AES-256-GCM, one call over {layer['bytes'] / MB:.0f} MB (the library's ceiling) | {layer['raw_s'] * 1e3:.0f} ms | {layer['raw_mb_s']:.0f} MB/s | {layer['bytes'] / MB / layer['raw_cpu_s']:.0f} MB/s |",
        f"| seal, crypto layer ({layer['bytes'] / MB:.0f} MB in memory; `encrypt_run`) | {layer['seal_s'] * 1e3:.0f} ms | {layer['seal_mb_s']:.0f} MB/s | {layer['bytes'] / MB / layer['seal_cpu_s']:.0f} MB/s |",
        f"| open, crypto layer ({layer['bytes'] / MB:.0f} MB in memory; `decrypt_run`) | {layer['open_s'] * 1e3:.0f} ms | {layer['open_mb_s']:.0f} MB/s | {layer['bytes'] / MB / layer['open_cpu_s']:.0f} MB/s |",
        f"| decrypt the model weights into memory ({run['weights_bytes'] / MB:.1f} MB, `SealedRun.read`) | {run['open_weights_in_memory_s'] * 1e3:.1f} ms | {run['open_weights_in_memory_mb_s']:.0f} MB/s | |",
        f"| `encrypt_run`, file to file with fsync ({run['model_folder_bytes'] / MB:.1f} MB) | {run['encrypt_run_s'] * 1e3:.0f} ms | {run['encrypt_run_mb_s']:.0f} MB/s | |",
        f"| `decrypt_run`, file to file with fsync | {run['decrypt_run_s'] * 1e3:.0f} ms | {run['decrypt_run_mb_s']:.0f} MB/s | |",
        f"| `trustune.load`, plaintext run | {run['load_plain_s'] * 1e3:.1f} ms | | |",
        f"| `trustune.load`, encrypted run | {run['load_encrypted_s'] * 1e3:.1f} ms | | |",
        f"| `trustune.load(public_key=...)`, signed plaintext run (verify, hash, load in memory) | {run['load_signed_plain_s'] * 1e3:.1f} ms | | |",
        f"| new process: `import trustune` + `load`, plaintext | {run['fresh_process_plain_s'] * 1e3:.0f} ms | | |",
        f"| new process: `import trustune` + `load`, encrypted | {run['fresh_process_encrypted_s'] * 1e3:.0f} ms | | |",
        "",
        f"- Encrypted load / plaintext load: **{run['load_ratio']:.2f}x** "
        f"(+{(run['load_ratio'] - 1) * 100:.0f}%, +{(run['load_encrypted_s'] - run['load_plain_s']) * 1e3:.1f} ms); "
        f"target <= {TARGET_LOAD_RATIO:.2f}x: {ok(load_ok)}. Same predictions: {run['same_predictions']}. "
        f"In a new process (a CLI command): {run['fresh_process_encrypted_s'] / run['fresh_process_plain_s']:.2f}x.",
        f"- Encryption throughput (crypto layer, one thread): {layer['seal_mb_s']:.0f} MB/s = "
        f"{layer['seal_mb_s'] / layer['raw_mb_s']:.2f}x the one-call AES-GCM ceiling measured "
        f"beside it; target >= {TARGET_THROUGHPUT_MB_S:.0f} MB/s: {ok(enc_ok)}.",
    ])  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per figure")
    parser.add_argument("--buffer-mib", type=int, default=512, help="in-memory buffer size")
    parser.add_argument("--out", type=Path, help="result JSON path")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    stamp = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "benchmark": "crypto",
        "date": stamp.isoformat(timespec="seconds"),
        "command": "python bench/crypto.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "repeats": args.repeats,
        "machine": machine_info(),
    }
    with tempfile.TemporaryDirectory(prefix="trustune-crypto-") as tmp:
        root = Path(tmp)
        plain = build_run(root)
        report["layer"] = bench_layer(args.buffer_mib, args.repeats)
        report["run"] = bench_run(root, plain, args.repeats)
    report["markdown"] = markdown(report)
    out = args.out or RESULTS_DIR / f"crypto-{stamp.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(report["markdown"])
    print(f"\n[crypto] results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
