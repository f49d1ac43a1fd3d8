"""A sequence classifier exported to ONNX, run by ONNX Runtime behind the model interface.

:class:`OnnxSequenceModel` takes the same keyword inputs as a transformers sequence classifier
(``input_ids``, ``attention_mask``, ``token_type_ids``) and returns an object with ``logits``
(a float torch tensor), so batched inference, evaluation, serving and the perturbation
explanations use it without special cases. Gradient methods cannot (it is not a torch module).

The session is built from bytes (an encrypted run is decrypted in memory, never to a plaintext
file) with every graph optimisation on, ``intra_op_num_threads`` = the cores this process may
use (``os.sched_getaffinity``) and one inter-op thread: the micro-batcher runs one forward pass
at a time, so a single request's work should have every core.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from trustune.errors import ModelError

__all__ = ["ONNX_FILE", "OnnxSequenceModel", "load_onnx_model", "onnx_session", "session_threads"]

ONNX_FILE = "model.onnx"


def session_threads() -> int:
    """ONNX Runtime's intra-op threads: the cores this process may run on."""
    env = os.environ.get("TRUSTUNE_ORT_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def onnx_session(model: bytes | str | Path, *, threads: int | None = None) -> Any:
    """An ``InferenceSession`` on the CPU with all graph optimisations, from bytes or a file."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(
            "this run's model is ONNX and needs ONNX Runtime: pip install 'trustune[onnx]'"
        ) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or session_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: no per-node placement notes on stderr
    source = bytes(model) if isinstance(model, bytes | bytearray) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"ONNX Runtime cannot open the model: {first}") from None


class OnnxSequenceModel:
    """An ONNX sequence classifier with the calling convention of a transformers one."""

    no_gradients_reason = (
        "it runs on ONNX Runtime, which computes no gradients (explain the run it was "
        "compressed from for gradient methods)"
    )

    def __init__(self, session: Any, config: Any) -> None:
        self.session = session
        self.config = config
        self.input_names = tuple(i.name for i in session.get_inputs())
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        if missing:
            raise ModelError(
                f"the ONNX model has no {sorted(missing)} input(s); it was not exported by "
                "trustune compress"
            )

    def __repr__(self) -> str:
        return f"OnnxSequenceModel(inputs={list(self.input_names)}, outputs={self.num_outputs})"

    @property
    def num_outputs(self) -> int:
        return int(getattr(self.config, "num_labels", 0) or 0)

    def eval(self) -> OnnxSequenceModel:
        return self

    def get_input_embeddings(self) -> None:
        """None: there is no embedding module to attribute gradients to."""
        return None

    def forward(
        self, input_ids: Any, attention_mask: Any, token_type_ids: Any | None = None
    ) -> SimpleNamespace:
        """Logits of a padded batch (torch or numpy integer arrays)."""
        import torch

        feeds = {"input_ids": _int64(input_ids), "attention_mask": _int64(attention_mask)}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = (
                np.zeros_like(feeds["input_ids"])
                if token_type_ids is None
                else _int64(token_type_ids)
            )
        (logits,) = self.session.run(["logits"], feeds)
        return SimpleNamespace(logits=torch.from_numpy(np.ascontiguousarray(logits)))

    __call__ = forward


def _int64(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64)


def _config(config_dict: dict[str, Any], source: str) -> Any:
    import transformers

    if "auto_map" in config_dict:
        from trustune.errors import UnsafeModelError

        raise UnsafeModelError(
            f"{source} asks for remote code (auto_map in config.json); trustune never runs code "
            "that ships with a model"
        )
    try:
        return transformers.AutoConfig.for_model(**config_dict)
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(
            f"{source}: model type {config_dict.get('model_type')!r} is not a built-in "
            f"transformers architecture ({e.__class__.__name__})"
        ) from None


def load_onnx_model(
    onnx_bytes: bytes, config_json: bytes | str, *, source: str, threads: int | None = None
) -> OnnxSequenceModel:
    """The ONNX model of a run's ``model/`` folder: ``model.onnx`` and ``config.json``, as bytes
    (a plaintext folder reads them from disk, an encrypted one decrypts them in memory)."""
    try:
        config_dict = json.loads(config_json)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{source}/config.json cannot be read as JSON: {e}") from None
    if not isinstance(config_dict, dict):
        raise ModelError(f"{source}/config.json is not a JSON object")
    config = _config(config_dict, source)
    return OnnxSequenceModel(onnx_session(onnx_bytes, threads=threads), config)
