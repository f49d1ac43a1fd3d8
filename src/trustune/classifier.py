"""A trained run, loaded: predict, evaluate, and the facts of its manifest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trustune.artifact import read_manifest, read_metrics, recover_run
from trustune.data import LabelMap, read_labeled
from trustune.errors import ArtifactError, ConfigError, DataError
from trustune.evaluate import classification_metrics, measure_speed
from trustune.inference import compute_logits, softmax
from trustune.models import ResolvedModel, load_classifier, load_tokenizer
from trustune.models.consistency import check_run_parts
from trustune.train.batching import encode_texts

if TYPE_CHECKING:
    from trustune.explain import Explanation
    from trustune.progress import Progress
    from trustune.security.loading import KeyLike, PublicKeyLike

__all__ = ["Prediction", "TextClassifier", "load"]


@dataclass(frozen=True)
class Prediction:
    """The predicted label and the probability of every class."""

    label: int | str
    score: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "probabilities": self.probabilities}


class TextClassifier:
    """A fine-tuned classifier from a run folder (use :func:`trustune.load`)."""

    def __init__(
        self, run_dir: Path, *, model: Any, tokenizer: Any, manifest: dict[str, Any]
    ) -> None:
        self.run_dir = run_dir
        config = _section(manifest, "config")
        data = _section(config, "data")
        self.max_length = check_run_parts(
            model, tokenizer, labels=manifest.get("labels"), max_length=data.get("max_length"),
            where=str(run_dir),
        )  # fmt: skip
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.label_map = LabelMap(tuple(manifest["labels"]))
        self.pad_id = tokenizer.pad_token_id or 0
        # trained with --redact-pii: texts are redacted the same way before prediction
        self.redact_pii = bool(_section(config, "privacy").get("redact_pii", False))

    def __repr__(self) -> str:
        return f"TextClassifier(run={str(self.run_dir)!r}, labels={list(self.labels)!r})"

    @property
    def labels(self) -> tuple[int | str, ...]:
        return self.label_map.names

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Class probabilities, shape (len(texts), classes), in input order."""
        texts = _check_texts(texts)
        if not texts:
            return np.empty((0, len(self.labels)), dtype=np.float32)
        if self.redact_pii:
            from trustune.privacy.redact import redact_texts

            texts = redact_texts(texts).texts
        encoded = encode_texts(self.tokenizer, texts, max_length=self.max_length)
        with torch.inference_mode():
            logits = compute_logits(self.model, encoded, batch_size=batch_size, pad_id=self.pad_id)
        return softmax(logits)

    def predict(self, texts: Sequence[str] | str, *, batch_size: int = 32) -> list[Prediction]:
        """Label and probabilities for each text."""
        if isinstance(texts, str):
            texts = [texts]
        probs = self.predict_proba(texts, batch_size=batch_size)
        return [self._prediction(row) for row in probs]

    def predict_stream(self, texts: Iterable[str], *, batch_size: int = 64) -> Iterator[Prediction]:
        """Predict an iterable lazily, ``batch_size`` texts per forward pass, in input order."""
        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) == batch_size:
                yield from self.predict(chunk, batch_size=batch_size)
                chunk = []
        if chunk:
            yield from self.predict(chunk, batch_size=batch_size)

    def explain(
        self,
        texts: Sequence[str] | str,
        *,
        method: str = "integrated-gradients",
        target: int | str | None = None,
        progress: Progress | None = None,
        **options: Any,
    ) -> list[Explanation]:
        """Why the model decides as it does: one signed score per word of each text.

        ``target`` is the label to explain (default: each text's prediction); ``options`` are
        the fields of :class:`trustune.explain.ExplainOptions` (``n_steps``, ``n_samples``, ...).
        """
        from trustune.explain import ExplainableModel, ExplainOptions, explain_texts

        allowed = set(ExplainOptions.__dataclass_fields__)
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(f"unknown explain option(s) {unknown}. Allowed: {sorted(allowed)}")
        return explain_texts(
            ExplainableModel.from_classifier(self), [texts] if isinstance(texts, str) else texts,
            method=method, target=target, options=ExplainOptions(**options), progress=progress,
        )  # fmt: skip

    def _prediction(self, row: np.ndarray) -> Prediction:
        best = int(row.argmax())
        probabilities = {str(n): round(float(p), 6) for n, p in zip(self.labels, row, strict=True)}
        return Prediction(
            label=self.labels[best], score=round(float(row[best]), 6), probabilities=probabilities
        )

    def evaluate(
        self, data: str | Path, *, text_column: str | None = None, label_column: str | None = None,
        skip_bad_rows: bool = False, measure_latency: bool = True, batch_size: int = 64,
    ) -> dict[str, Any]:  # fmt: skip
        """Metrics on a labeled file (the EvalResult of docs/run-artifact.md)."""
        labeled, _ = read_labeled(
            data,
            text_column=text_column or self.manifest.get("text_column"),
            label_column=label_column or self.manifest.get("label_column"),
            skip_bad_rows=skip_bad_rows,
        )
        labeled.encode(self.label_map, source=str(data))
        probs = self.predict_proba(labeled.texts, batch_size=batch_size)
        result = {"data": {k: labeled.info[k] for k in ("path", "sha256", "rows", "skipped_rows")}}
        result.update(classification_metrics(labeled.labels, probs, label_names=self.labels))
        if measure_latency:
            result["speed"] = self.measure_speed(labeled.texts)
        return result

    def measure_speed(self, texts: Sequence[str]) -> dict[str, Any]:
        """Latency at batch 1 and throughput at batch 32 on this machine."""
        return measure_speed(lambda t, b: self.predict_proba(t, batch_size=b), texts)


def _section(parent: dict[str, Any], name: str) -> dict[str, Any]:
    """A sub-dict of the manifest, or an empty one when it is missing or not a dict."""
    value = parent.get(name)
    return value if isinstance(value, dict) else {}


def _check_texts(texts: Sequence[str]) -> list[str]:
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(
            f"text {bad[0] + 1} of {len(out)} is empty or not a string; every text needs content"
        )
    return out


def load(
    run: str | Path, *, key: KeyLike | None = None, public_key: PublicKeyLike | None = None
) -> TextClassifier:
    """Load a run folder written by ``trustune train`` (safetensors only, no remote code).

    An encrypted run is decrypted in memory with ``key`` (a key-file path, a ``SecretKey`` or a
    ``Passphrase``; default: ``TRUSTUNE_KEY_FILE``, ``TRUSTUNE_KEY`` or ``TRUSTUNE_PASSPHRASE``).
    With ``public_key`` (a path or ``PublicKey``) the run must carry a valid signature.
    What an interrupted encrypt or decrypt left behind is repaired first (a logged warning).
    """
    run_dir = Path(run)
    recover_run(run_dir)
    manifest = read_manifest(run_dir)
    if public_key is not None or "encryption" in manifest:
        from trustune.security.loading import open_protected_run

        model, tokenizer = open_protected_run(run_dir, manifest, key=key, public_key=public_key)
        return TextClassifier(run_dir, model=model, tokenizer=tokenizer, manifest=manifest)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise ArtifactError(f"{run_dir} has no model/ folder; the run did not finish training")
    resolved = ResolvedModel(
        source=str(model_dir), location=str(model_dir.resolve()), is_local=True
    )
    model = load_classifier(resolved)
    tokenizer = load_tokenizer(resolved)
    return TextClassifier(run_dir, model=model, tokenizer=tokenizer, manifest=manifest)


def run_metrics(run: str | Path) -> dict[str, Any]:
    """The metrics.json of a run."""
    return read_metrics(Path(run))
