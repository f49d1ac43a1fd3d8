"""A finished run, loaded: what every task's loaded object shares, and their registry.

``trustune.load`` (:mod:`trustune.loader`) reads the manifest's task and returns that task's
object (``TextClassifier``, ``TextRegressor``, ...) from this registry, so ``predict``,
``evaluate``, ``explain``, ``serve`` and ``audit privacy`` work for every task alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch

from trustune.data import read_labeled
from trustune.encoding import encode_texts
from trustune.errors import ConfigError, DataError
from trustune.evaluate import measure_speed
from trustune.inference import compute_logits
from trustune.manifest import Manifest
from trustune.tasks import Task, task_of_manifest

if TYPE_CHECKING:
    from trustune.explain import Explanation
    from trustune.progress import Progress

__all__ = ["LOADED", "LoadedRun", "register_loaded"]

# task name -> what trustune.load returns for its runs (filled by register_loaded)
LOADED: dict[str, type[LoadedRun]] = {}
L = TypeVar("L", bound="type[LoadedRun]")


def register_loaded(cls: L) -> L:
    """Class decorator: ``cls`` is what ``trustune.load`` returns for runs of ``cls.task_name``."""
    if cls.task_name in LOADED:
        raise ConfigError(f"a loaded type for task {cls.task_name!r} is registered twice")
    LOADED[cls.task_name] = cls
    return cls


def check_texts(texts: Sequence[str], what: str = "text") -> list[str]:
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(
            f"{what} {bad[0] + 1} of {len(out)} is empty or not a string; every {what} needs "
            "content"
        )
    return out


class LoadedRun:
    """A run folder's model, tokenizer, manifest and fitted task (use :func:`trustune.load`)."""

    task_name: ClassVar[str]
    #: a causal language model (opened as one, encrypted or not)
    causal: ClassVar[bool] = False

    def __init__(self, run_dir: Path, *, model: Any, tokenizer: Any, manifest: Manifest) -> None:
        self.run_dir = run_dir
        self.manifest = manifest
        self.task: Task = task_of_manifest(manifest, where=str(run_dir))
        self.max_length = self._check_parts(
            model, tokenizer, manifest.setting("data", "max_length")
        )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id or 0
        # trained with --redact-pii: texts are redacted the same way before prediction
        self.redact_pii = bool(manifest.setting("privacy", "redact_pii", False))

    @classmethod
    def open_model(cls, model_dir: Path, *, fmt: str, transform: str | None) -> Any:
        """The model of a run's (plaintext) ``model/`` folder, in the format its manifest names."""
        from trustune.models import load_run_model

        return load_run_model(model_dir, fmt=fmt, transform=transform)

    @classmethod
    def open_tokenizer(cls, model_dir: Path) -> Any:
        from trustune.models import ResolvedModel, load_tokenizer

        resolved = ResolvedModel(
            source=str(model_dir), location=str(model_dir.resolve()), is_local=True
        )
        return load_tokenizer(resolved)

    def _check_parts(self, model: Any, tokenizer: Any, max_length: Any) -> int:
        """Refuse a run whose manifest, model and tokenizer disagree; returns ``max_length``."""
        raise NotImplementedError

    @property
    def labels(self) -> tuple[int | str, ...]:
        """What predictions and explanations name: the classes, or ``("score",)``."""
        raise NotImplementedError

    @property
    def pairs(self) -> bool:
        """Whether the run was trained on text pairs (every input is two texts)."""
        return self.manifest.pairs

    def _inputs(
        self, texts: Sequence[str] | str, text_pairs: Sequence[str] | str | None
    ) -> tuple[list[str], list[str] | None]:
        out = check_texts([texts] if isinstance(texts, str) else list(texts))
        if text_pairs is None:
            if self.pairs:
                raise DataError(
                    f"this run was trained on text pairs ({self.manifest.text_column} "
                    f"and {self.manifest.text_pair_column}); pass text_pairs= with the "
                    "second text of each input"
                )
            return out, None
        if not self.pairs:
            raise DataError("this run was trained on single texts; drop text_pairs=")
        pairs = check_texts(
            [text_pairs] if isinstance(text_pairs, str) else list(text_pairs), "second text"
        )
        if len(pairs) != len(out):
            raise DataError(f"{len(out)} texts but {len(pairs)} second texts; give one of each")
        return out, pairs

    def logits(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, *,
        batch_size: int = 32,
    ) -> np.ndarray:  # fmt: skip
        """The model's raw outputs, shape (len(texts), outputs), in input order."""
        texts, pairs = self._inputs(texts, text_pairs)
        if not texts:
            return np.empty((0, self.task.outputs), dtype=np.float32)
        if self.redact_pii:
            from trustune.privacy.redact import redact_texts

            texts = redact_texts(texts).texts
            pairs = None if pairs is None else redact_texts(pairs).texts
        encoded = encode_texts(self.tokenizer, texts, max_length=self.max_length, pairs=pairs)
        with torch.inference_mode():
            return compute_logits(self.model, encoded, batch_size=batch_size, pad_id=self.pad_id)

    def predict(
        self, texts: Sequence[str] | str, text_pairs: Sequence[str] | str | None = None, *,
        batch_size: int = 32,
    ) -> list[Any]:  # fmt: skip
        """One prediction per text (or pair), in input order."""
        texts, pairs = self._inputs(texts, text_pairs)
        return self._predictions(self.logits(texts, pairs, batch_size=batch_size))

    def _predictions(self, logits: np.ndarray) -> list[Any]:
        raise NotImplementedError

    def per_example_loss(
        self, texts: Sequence[str], targets: Sequence[Any], text_pairs: Sequence[str] | None = None
    ) -> np.ndarray:
        """The task's loss of every example (targets as the task encodes them): the signal of
        the membership-inference audit, the same function training minimised."""
        logits = torch.as_tensor(self.logits(texts, text_pairs, batch_size=64))
        dtype = torch.float32 if any(isinstance(t, float) for t in targets) else torch.long
        with torch.no_grad():
            losses = self.task.saved_loss(logits, torch.as_tensor(list(targets), dtype=dtype))
        return losses.double().numpy()

    def predict_stream(
        self, texts: Iterable[str], text_pairs: Iterable[str] | None = None, *,
        batch_size: int = 64,
    ) -> Iterator[Any]:  # fmt: skip
        """Predict an iterable lazily, ``batch_size`` inputs per forward pass, in input order."""
        chunk: list[str] = []
        seconds: list[str] = []
        pair_iter = iter(text_pairs) if text_pairs is not None else None
        for text in texts:
            chunk.append(text)
            if pair_iter is not None:
                seconds.append(next(pair_iter))
            if len(chunk) == batch_size:
                yield from self.predict(
                    chunk, seconds if pair_iter else None, batch_size=batch_size
                )
                chunk, seconds = [], []
        if chunk:
            yield from self.predict(chunk, seconds if pair_iter else None, batch_size=batch_size)

    def explain(
        self,
        texts: Sequence[str] | str,
        text_pairs: Sequence[str] | str | None = None,
        *,
        method: str = "integrated-gradients",
        target: int | str | None = None,
        progress: Progress | None = None,
        **options: Any,
    ) -> list[Explanation]:
        """Why the model decides as it does: one signed score per word of each text.

        ``target`` is the label to explain (default: each text's prediction; a regression
        explains its predicted score); ``options`` are the fields of
        :class:`trustune.explain.ExplainOptions` (``n_steps``, ``n_samples``, ...). A run
        trained on text pairs takes ``text_pairs`` and scores the words of both texts.
        """
        from trustune.explain import ExplainableModel, ExplainOptions, explain_texts

        inputs, pairs = self._inputs(texts, text_pairs)
        if self.redact_pii:  # explain what the model reads, as prediction does
            from trustune.privacy.redact import redact_texts

            inputs = redact_texts(inputs).texts
            pairs = None if pairs is None else redact_texts(pairs).texts
        allowed = set(ExplainOptions.__dataclass_fields__)
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(f"unknown explain option(s) {unknown}. Allowed: {sorted(allowed)}")
        return explain_texts(
            ExplainableModel.from_classifier(self), inputs, method=method, target=target,
            options=ExplainOptions(**options), progress=progress, text_pairs=pairs,
        )  # fmt: skip

    def evaluate(
        self, data: str | Path, *, text_column: str | None = None, label_column: str | None = None,
        text_pair_column: str | None = None, skip_bad_rows: bool = False,
        measure_latency: bool = True, batch_size: int = 64, progress: Progress | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Metrics on a labeled file (the EvalResult of docs/run-artifact.md)."""
        labeled, _ = read_labeled(
            data,
            text_column=text_column or self.manifest.text_column,
            label_column=label_column or self.manifest.label_column,
            pair_column=text_pair_column or self.manifest.text_pair_column,
            pairs=self.pairs,
            skip_bad_rows=skip_bad_rows,
        )
        self.task.encode(labeled, source=str(data))
        logits = self._batched_logits(labeled.texts, labeled.pairs, batch_size, progress)
        result = {"data": {k: labeled.info[k] for k in ("path", "sha256", "rows", "skipped_rows")}}
        result.update(self.task.metrics(labeled.labels, logits))
        if measure_latency:
            result["speed"] = self.measure_speed(labeled.texts, pairs=labeled.pairs)
        return result

    def _batched_logits(
        self, texts: list[str], pairs: list[str] | None, batch_size: int,
        progress: Progress | None,
    ) -> np.ndarray:  # fmt: skip
        """Outputs for many inputs in chunks, reporting progress when asked."""
        if progress is None:
            return self.logits(texts, pairs, batch_size=batch_size)
        chunk = max(batch_size * 4, 256)
        parts = []
        progress.start("evaluate", total=len(texts))
        try:
            for start in range(0, len(texts), chunk):
                piece = None if pairs is None else pairs[start : start + chunk]
                parts.append(
                    self.logits(texts[start : start + chunk], piece, batch_size=batch_size)
                )
                progress.advance("evaluate", len(parts[-1]))
        finally:
            progress.end("evaluate")
        return np.concatenate(parts) if parts else self.logits([], None)

    def measure_speed(
        self, texts: Sequence[str], *, pairs: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Latency at batch 1 and throughput at batch 32 on this machine."""
        if pairs is None:
            return measure_speed(lambda t, b: self.logits(t, batch_size=b), texts)
        second = dict(zip(texts, pairs, strict=True))
        return measure_speed(
            lambda t, b: self.logits(t, [second[x] for x in t], batch_size=b), texts
        )
