"""Serving benchmark: closed-loop load on loopback against `trustune serve` and a naive baseline.

What it measures
----------------
The default model (all-MiniLM-L6-v2), fine-tuned inside the benchmark for one epoch on a seeded
``--train-rows`` subset of GLUE SST-2 (``../shared/data/sst2/train.tsv``; 2 classes), served two
ways, each in its own process on 127.0.0.1:

* **trustune**: ``trustune serve RUN`` with its defaults (API key checked on every request, audit
  log to SQLite, micro-batching with ``--max-batch 32 --max-wait-ms 5``);
* **baseline**: a FastAPI endpoint (uvicorn, one process) calling a transformers
  ``pipeline("text-classification", top_k=None)`` per request, no batching, no auth, no audit.

Load: ``C`` clients (1, 8, 32 by default), each sending one short SST-2 sentence per request and
waiting for the answer before sending the next (closed loop), for ``--seconds`` after a warm-up.
Per level: throughput (requests/s), p50 and p99 latency, errors (non-200 or failed requests).
Figures are medians over ``--repeats`` rounds; within a round each level is measured on one server
then the other (both stay up), so the shared machine's noise falls on both alike. The share of
CPU other processes used during the run is recorded from /proc/stat.

Targets (issue #6): at 32 clients >= 4x the baseline's throughput with p99 no worse than the
baseline's; at 1 client p50 <= 15 ms; zero errors.

How to run
----------
From the repository root, under the shared benchmark lock::

    flock /tmp/trustune-bench.lock .venv/bin/python bench/serve.py            # ~5 minutes
    .venv/bin/python bench/serve.py --seconds 3 --repeats 1 --train-rows 200  # quick trial

Results go to ``bench/results/serve-<timestamp>.json`` (or ``--out``); a Markdown table ready
for BENCHMARKS.md is printed to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SST2 = REPO_ROOT.parent / "shared" / "data" / "sst2"
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", default="1,8,32", help="concurrency levels (default 1,8,32)")
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=1.5, help="warm-up seconds per level")
    p.add_argument("--repeats", type=int, default=3, help="rounds (medians are reported)")
    p.add_argument("--train-rows", type=int, default=400, help="SST-2 rows to fine-tune on")
    p.add_argument("--run", type=Path, help="serve this run instead of training one")
    p.add_argument(
        "--baseline-run", type=Path,
        help="the run the baseline serves (default: --run, or the run it was compressed from)",
    )  # fmt: skip
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads of both servers (default 1: the machine is shared, see BENCHMARKS.md)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="JSON result path (default bench/results/...)")
    p.add_argument("--baseline-server", metavar="RUN", help=argparse.SUPPRESS)  # child mode
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- the baseline server (child process) ----
try:
    from pydantic import BaseModel

    class _BaselineBody(BaseModel):
        texts: list[str]

except ImportError:  # the parent does not need it
    pass


def _plain_parent(run: Path) -> Path:
    """The run a compressed run came from (the naive baseline serves the plain model)."""
    manifest = json.loads((run / "trustune.json").read_text())
    parent = (manifest.get("compression") or {}).get("parent") or {}
    return Path(parent["run"]) if parent.get("run") else run


def baseline_server(run: str, port: int, threads: int) -> None:
    import torch
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    torch.set_num_threads(threads)
    classify = pipeline("text-classification", model=str(Path(run) / "model"), top_k=None)
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(body: _BaselineBody) -> dict[str, Any]:
        return {"predictions": classify(body.texts)}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---- helpers ----
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sentences(n: int, seed: int) -> list[str]:
    with open(SST2 / "test.tsv", encoding="utf-8") as f:
        rows = [r["sentence"].strip() for r in csv.DictReader(f, delimiter="\t")]
    short = [s for s in rows if 4 <= len(s.split()) <= 12]
    random.Random(seed).shuffle(short)
    return short[:n]


def _train(folder: Path, rows: int) -> Path:
    import trustune

    with open(SST2 / "train.tsv", encoding="utf-8") as f:
        data = list(csv.DictReader(f, delimiter="\t"))
    random.Random(0).shuffle(data)
    train = folder / "train.tsv"
    with open(train, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["sentence", "label"], delimiter="\t")
        writer.writeheader()
        writer.writerows(data[:rows])
    run = folder / "run"
    trustune.finetune(train, model="minilm", output=run, epochs=1, measure_latency=False)
    return run


def _start(cmd: list[str], url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    import httpx

    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("server did not become ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


async def _load(
    url: str, headers: dict[str, str], sentences: list[str], clients: int, warmup: float,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    import httpx

    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.perf_counter() + warmup + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(index: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = index
        while time.perf_counter() < stop_at:
            body = {"texts": [sentences[i % len(sentences)]]}
            i += clients
            started = time.perf_counter()
            try:
                response = await http.post("/v1/predict", json=body)
                ok = response.status_code == 200 and len(response.json()["predictions"]) == 1
            except httpx.HTTPError:
                ok = False
            if measuring:
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        tasks = [asyncio.create_task(client(c, http)) for c in range(clients)]
        await asyncio.sleep(warmup)
        measuring = True
        started = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return (
            1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]
            if latencies
            else float("nan")
        )

    return {
        "requests": len(latencies), "errors": errors, "seconds": elapsed,
        "throughput": len(latencies) / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
    }  # fmt: skip


def _cpu_snapshot(pids: list[int]) -> tuple[int, int, int]:
    """(busy, total) jiffies of the whole machine, and the jiffies our processes used."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    ours = 0
    for pid in [os.getpid(), *pids]:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            ours += sum(int(x) for x in stat[11:15])  # utime stime cutime cstime
        except OSError:
            pass
    return sum(fields) - idle, sum(fields), ours


def _other_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """The share of the machine's CPU that processes other than ours used in between."""
    busy, total, ours = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, (busy - ours) / total) if total else 0.0


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.baseline_server:
        baseline_server(args.baseline_server, args.port, args.threads)
        return 0
    levels = [int(c) for c in args.clients.split(",")]
    env = {
        **os.environ,
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRUSTUNE_DB": "",
    }
    env["PYTHONPATH"] = str(REPO_ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    sentences = _sentences(500, seed=1)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        run = args.run.resolve() if args.run else _train(folder, args.train_rows)
        print(f"trained {run} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        baseline_run = args.baseline_run.resolve() if args.baseline_run else _plain_parent(run)
        from trustune.store import Store

        db = f"sqlite:///{folder / 'serve.db'}"
        with Store.open(db) as store:
            _, secret = store.create_key(name="bench", role="predict", rate_per_s=1e6, burst=10**6)
        servers = {
            "trustune": (
                [sys.executable, "-m", "trustune.cli.main", "serve", str(run), "--db", db,
                 "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
                 "--threads", str(args.threads)],
                {"Authorization": f"Bearer {secret}"},
            ),
            "baseline": (
                [sys.executable, str(Path(__file__).resolve()), "--baseline-server",
                 str(baseline_run),
                 "--threads", str(args.threads)],
                {},
            ),
        }  # fmt: skip
        rounds: dict[str, dict[int, list[dict[str, Any]]]] = {
            name: {c: [] for c in levels} for name in servers
        }
        # Both servers stay up (an idle one costs no CPU); each round measures every level on
        # one, then the other, so noise from the shared machine falls on both alike.
        urls: dict[str, str] = {}
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for name, (cmd, _) in servers.items():
                port = _free_port()
                urls[name] = f"http://127.0.0.1:{port}"
                processes.append(_start([*cmd, "--port", str(port)], urls[name], env))
            for r in range(args.repeats):
                for clients in levels:
                    for name, (_, headers) in servers.items():
                        before = _cpu_snapshot([p.pid for p in processes])
                        result = asyncio.run(
                            _load(
                                urls[name], headers, sentences, clients, args.warmup, args.seconds
                            )
                        )
                        result["other_cpu"] = _other_share(
                            before, _cpu_snapshot([p.pid for p in processes])
                        )
                        rounds[name][clients].append(result)
                        print(
                            f"{name} round {r + 1} clients {clients}: "
                            f"{result['throughput']:.1f} req/s p50 {result['p50_ms']:.1f} ms "
                            f"p99 {result['p99_ms']:.1f} ms errors {result['errors']} "
                            f"(other processes: {100 * result['other_cpu']:.0f}% CPU)",
                            file=sys.stderr,
                        )
        finally:
            for process in processes:
                _stop(process)
        with Store.open(db) as store:
            audited = len(store.audit_entries())
    summary = {
        name: {
            c: {k: _median(rs, k) for k in ("throughput", "p50_ms", "p99_ms", "other_cpu")}
            | {"errors": sum(r["errors"] for r in rs)}
            for c, rs in by_level.items()
        }
        for name, by_level in rounds.items()
    }
    top = max(levels)
    t, b = summary["trustune"][top], summary["baseline"][top]
    targets = {
        f"throughput at {top} clients >= 4x baseline": t["throughput"] >= 4 * b["throughput"],
        f"p99 at {top} clients <= baseline's": t["p99_ms"] <= b["p99_ms"],
        "p50 at 1 client <= 15 ms": 1 in levels and summary["trustune"][1]["p50_ms"] <= 15.0,
        "zero errors": all(v["errors"] == 0 for s in summary.values() for v in s.values()),
    }
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:], "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "rounds": rounds, "summary": summary, "targets": targets, "audit_entries": audited,
    }  # fmt: skip
    out = args.out or RESULTS_DIR / f"serve-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print("| clients | server | throughput (req/s) | p50 (ms) | p99 (ms) | errors | other CPU |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for c in levels:
        for name in servers:
            s = summary[name][c]
            print(
                f"| {c} | {name} | {s['throughput']:.1f} | {s['p50_ms']:.1f} | "
                f"{s['p99_ms']:.1f} | {s['errors']} | {100 * s['other_cpu']:.0f}% |"
            )
    for c in levels:
        base = summary["baseline"][c]["throughput"]
        ratio = summary["trustune"][c]["throughput"] / base if base else float("nan")
        print(f"\nthroughput ratio at {c} clients: {ratio:.2f}x", end="")
    print()
    for target, met in targets.items():
        print(f"- {target}: {'met' if met else 'MISSED'}")
    print(f"(results: {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
