"""Explanations: Captum methods, word merging, completeness, faithfulness, rendering, storage."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import trustune
from trustune.errors import ConfigError, DataError, LabelError, ModelError
from trustune.explain import (
    ExplainableModel,
    ExplainOptions,
    Explanation,
    explain_texts,
    get_explainer,
    known_methods,
    register_explainer,
)
from trustune.explain.batch import TokenBatch
from trustune.explain.faithfulness import (
    RANDOM,
    evaluate_faithfulness,
    faithfulness_of,
    score_explanations,
)
from trustune.explain.global_importance import aggregate_importance
from trustune.explain.render import render_page, segments, terminal_text
from trustune.explain.words import merge_pieces, tokenize_words
from trustune.progress import Progress

TEXTS = [
    "I was charged twice for my order, please refund one payment.",
    "The app crashes every time I open the settings page.",
    "Unbelievably, my parcel has still not arrived after two weeks!",
]
FEW_STEPS = ExplainOptions(n_steps=16, n_samples=40)


@pytest.fixture(scope="module")
def classifier(tiny_run: Path) -> trustune.TextClassifier:
    return trustune.load(tiny_run)


@pytest.fixture(scope="module")
def model(classifier: trustune.TextClassifier) -> ExplainableModel:
    return ExplainableModel.from_classifier(classifier)


def _labels(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def test_registry_lists_the_methods() -> None:
    assert known_methods()[:5] == [
        "integrated-gradients", "gradient-x-input", "saliency", "occlusion", "kernel-shap",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"unknown explanation method 'lrp'; the methods are "
                       r"integrated-gradients, gradient-x-input, saliency, occlusion, kernel-shap"):  # fmt: skip
        get_explainer("lrp")
    with pytest.raises(ConfigError, match="'occlusion' is already registered; the methods are"):
        register_explainer("occlusion", summary="again", needs_gradients=False)(
            get_explainer("occlusion").attribute
        )


def test_pieces_merge_into_the_words_of_the_text(classifier: trustune.TextClassifier) -> None:
    text = "It's Unbelievably good"
    [tokenized] = tokenize_words(classifier.tokenizer, [text], max_length=64)
    pieces = classifier.tokenizer.convert_ids_to_tokens(list(tokenized.input_ids))
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert "##bly" in pieces  # "unbelievably" is several WordPiece pieces ...
    assert tokenized.words == ("It", "'", "s", "Unbelievably", "good")  # ... and one word
    assert [text[a:b] for a, b in tokenized.spans] == list(tokenized.words)
    multi = tokenized.words.index("Unbelievably")
    token_scores = np.arange(len(pieces), dtype=np.float64)
    words = merge_pieces(token_scores, tokenized.word_of_token, tokenized.n_words)
    positions = [i for i, w in enumerate(tokenized.word_of_token) if w == multi]
    assert len(positions) > 1
    assert words[multi] == pytest.approx(token_scores[positions].sum())
    # special tokens belong to no word: the words add up to the pieces between [CLS] and [SEP]
    assert words.sum() == pytest.approx(token_scores[1:-1].sum())


def test_integrated_gradients_is_complete(model: ExplainableModel) -> None:
    """Attributions add up to p(x) - p(baseline) for the target class (IG's completeness)."""
    options = ExplainOptions(n_steps=64, texts_per_batch=3, precision="fp32")
    explanations = explain_texts(model, TEXTS, options=options)
    tokenized = tokenize_words(model.tokenizer, TEXTS, max_length=model.max_length)
    for text, e in zip(tokenized, explanations, strict=True):
        target = model.labels.index(e.target)
        batch = TokenBatch.build([text], [target], pad_id=model.pad_id)
        with torch.inference_mode():
            p_input = model.probabilities(batch.input_ids, batch.attention_mask)[0, target]
            p_base = model.probabilities(batch.baseline_ids, batch.attention_mask)[0, target]
        assert sum(e.scores) == pytest.approx(float(p_input - p_base), abs=1e-3)
        assert e.delta is not None and abs(e.delta) < 1e-3


def test_bf16_attributions_stay_close_and_leave_the_model_as_it_was(
    model: ExplainableModel,
) -> None:
    attention = model.model.config._attn_implementation
    exact = explain_texts(model, TEXTS, options=ExplainOptions(n_steps=32, precision="fp32"))
    fast = explain_texts(model, TEXTS, options=ExplainOptions(n_steps=32, precision="bf16"))
    for a, b in zip(exact, fast, strict=True):
        scale = max(abs(s) for s in a.scores)
        np.testing.assert_allclose(a.scores, b.scores, atol=0.1 * scale)
        assert b.delta is not None and abs(b.delta) < 5e-3
    assert model.model.config._attn_implementation == attention
    assert not torch.is_autocast_enabled("cpu")


def test_batching_texts_together_changes_nothing(model: ExplainableModel) -> None:
    one = explain_texts(
        model, TEXTS, options=ExplainOptions(n_steps=16, texts_per_batch=1, precision="fp32")
    )
    together = explain_texts(
        model, TEXTS, options=ExplainOptions(n_steps=16, texts_per_batch=3, precision="fp32")
    )
    for a, b in zip(one, together, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, atol=2e-5)


@pytest.mark.parametrize("method", ["integrated-gradients", "gradient-x-input", "saliency",
                                    "occlusion", "kernel-shap"])  # fmt: skip
def test_every_method_scores_every_word(model: ExplainableModel, method: str) -> None:
    explanations = explain_texts(model, TEXTS[:2], method=method, options=FEW_STEPS)
    assert len(explanations) == 2
    for text, e in zip(TEXTS[:2], explanations, strict=True):
        assert e.method == method and e.text == text
        assert len(e.scores) == len(e.words) > 5
        assert all(np.isfinite(e.scores)) and any(s != 0 for s in e.scores)
        assert e.predicted == e.target  # explains the prediction by default
        assert sum(e.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    if method == "saliency":
        assert all(s >= 0 for e in explanations for s in e.scores)


def test_api_target_and_truncation(classifier: trustune.TextClassifier) -> None:
    [e] = classifier.explain("my parcel never arrived", target="billing", n_steps=8)
    assert e.target == "billing"
    long_text = " ".join(["refund"] * 400)
    [cut] = classifier.explain(long_text, method="gradient-x-input")
    assert cut.truncated and cut.dropped_words == 400 - len(cut.words)
    assert 0 < len(cut.words) <= classifier.max_length - 2  # [CLS] and [SEP] stay


def test_bad_inputs_say_what_is_wrong(
    classifier: trustune.TextClassifier, model: ExplainableModel
) -> None:
    with pytest.raises(DataError, match="text 2 of 2 is empty"):
        classifier.explain(["fine", "   "])
    with pytest.raises(DataError, match="no text to explain"):
        classifier.explain([])
    with pytest.raises(LabelError, match=r"unknown label 'refunds'; the labels are \['account'"):
        classifier.explain("x", target="refunds")
    with pytest.raises(ConfigError, match="unknown explanation method 'shap'"):
        classifier.explain("x", method="shap")
    with pytest.raises(ConfigError, match=r"unknown explain option\(s\) \['steps'\]"):
        classifier.explain("x", steps=3)
    with pytest.raises(ConfigError, match="n_steps: 0 is not allowed"):
        ExplainOptions(n_steps=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_a_quantized_model_gets_perturbation_methods_only(model: ExplainableModel) -> None:
    quantized = torch.ao.quantization.quantize_dynamic(
        model.model, {torch.nn.Linear}, dtype=torch.qint8
    )
    small = ExplainableModel(
        model=quantized, tokenizer=model.tokenizer, labels=model.labels,
        max_length=model.max_length, pad_id=model.pad_id,
    )  # fmt: skip
    with pytest.raises(ModelError, match=r"'integrated-gradients' needs gradients .* it is "
                       r"quantized .* Methods that need only predictions: occlusion, kernel-shap"):  # fmt: skip
        explain_texts(small, TEXTS[:1])
    [e] = explain_texts(small, TEXTS[:1], method="occlusion")
    assert len(e.scores) == len(e.words)


class _PredictOnly:
    """Stands in for an exported model (an ONNX session behind the Hugging Face call
    convention): numpy in, numpy logits out, no torch module and so no gradients."""

    def __init__(self, model: torch.nn.Module) -> None:
        self._model = model

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        ids, mask = np.asarray(input_ids), np.asarray(attention_mask)
        with torch.inference_mode():
            logits = self._model(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
            ).logits
        return logits.numpy().astype(np.float32)


def test_perturbation_methods_need_only_predictions(model: ExplainableModel) -> None:
    """Occlusion and kernel-shap explain a model known only by its predictions, with the same
    scores as on the torch model; gradient methods refuse it and name the methods that work."""
    opaque = ExplainableModel(
        model=_PredictOnly(model.model), tokenizer=model.tokenizer, labels=model.labels,
        max_length=model.max_length, pad_id=model.pad_id,
    )  # fmt: skip
    with pytest.raises(ModelError, match=r"it is a _PredictOnly, not a torch module\. "
                       r"Methods that need only predictions: occlusion, kernel-shap"):  # fmt: skip
        explain_texts(opaque, TEXTS[:1], method="saliency")
    for method in ("occlusion", "kernel-shap"):
        [seen] = explain_texts(opaque, TEXTS[:1], method=method, options=FEW_STEPS)
        [known] = explain_texts(model, TEXTS[:1], method=method, options=FEW_STEPS)
        assert seen.words == known.words and seen.predicted == known.predicted
        np.testing.assert_allclose(seen.scores, known.scores, atol=1e-5)


def test_integrated_gradients_beats_random_rankings(
    model: ExplainableModel, demo_files: tuple[Path, Path]
) -> None:
    texts, _ = _labels(demo_files[1])
    report = evaluate_faithfulness(
        model, texts, methods=["integrated-gradients", "occlusion"], sample=16,
        options=ExplainOptions(n_steps=16),
    )  # fmt: skip
    assert [m.method for m in report.methods] == ["integrated-gradients", "occlusion", RANDOM]
    ig, random = report.get("integrated-gradients"), report.get(RANDOM)
    assert ig.comprehensiveness > random.comprehensiveness
    assert ig.sufficiency < random.sufficiency
    assert set(ig.comprehensiveness_by_bin) == {1, 5, 10, 20, 50}
    assert ig.seconds_per_text is not None and random.seconds_per_text is None
    assert report.to_dict()["methods"][0]["method"] == "integrated-gradients"


def test_faithfulness_deletes_the_top_words(model: ExplainableModel) -> None:
    """Scores that rank words by their real effect beat the reverse ranking."""
    tokenized = tokenize_words(model.tokenizer, TEXTS, max_length=model.max_length)
    targets = model.predict_ids([t.input_ids for t in tokenized]).argmax(axis=1).tolist()
    explanations = explain_texts(model, TEXTS, method="occlusion")
    effects = [e.scores for e in explanations]
    good = faithfulness_of(model, tokenized, effects, targets)
    bad = faithfulness_of(model, tokenized, [[-s for s in e] for e in effects], targets)
    assert good.comprehensiveness > bad.comprehensiveness
    with pytest.raises(ConfigError, match="scores for"):
        faithfulness_of(model, tokenized[:1], [[1.0]], targets[:1])
    report = score_explanations(model, TEXTS, {"occlusion": explanations}, random_repeats=2)
    assert report.get("occlusion").comprehensiveness == pytest.approx(good.comprehensiveness)
    with pytest.raises(ConfigError, match="2 occlusion explanations for 3 texts"):
        score_explanations(model, TEXTS, {"occlusion": explanations[:2]})


def _explanation(words: list[str], scores: list[float], target: str) -> Explanation:
    text = " ".join(words)
    spans, start = [], 0
    for w in words:
        spans.append((start, start + len(w)))
        start += len(w) + 1
    return Explanation(
        text=text, words=tuple(words), scores=tuple(scores), spans=tuple(spans), target=target,
        predicted=target, probabilities={target: 0.9, "other": 0.1}, method="occlusion",
    )  # fmt: skip


def test_global_importance_averages_words_per_class() -> None:
    explanations = [
        _explanation(["Refund", "please"], [0.4, 0.0], "billing"),
        _explanation(["refund", "now", "refund"], [0.2, -0.1, 0.3], "billing"),
        _explanation(["crash", "now"], [0.5, 0.1], "technical"),
    ]
    result = aggregate_importance(explanations, labels=["billing", "technical", "x"], min_count=1)
    billing = result.classes[0]
    assert billing.label == "billing" and billing.texts == 2
    top = billing.words[0]
    assert (top.word, top.count, top.frequency) == ("refund", 3, 1.0)
    assert top.mean_attribution == pytest.approx(0.3)
    assert [w.word for w in billing.words] == ["refund", "please", "now"]
    assert result.classes[2].words == ()
    strict = aggregate_importance(explanations, labels=["billing", "technical"], min_count=2)
    assert [w.word for w in strict.classes[0].words] == ["refund"]
    assert strict.to_dict()["classes"]["billing"]["words"][0]["count"] == 3


def test_rendering_keeps_the_text_and_escapes_it() -> None:
    e = _explanation(["<script>alert(1)</script>", "fine"], [-0.2, 0.1], "billing")
    assert "".join(s.text for s in segments(e)) == e.text
    assert terminal_text(e).plain == e.text
    html = render_page([e], title="t")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert "rgba(220, 38, 38, 0.850)" in html  # the strongest word, against the class
    assert Explanation.from_dict(json.loads(json.dumps(e.to_dict()))) == e


def test_results_are_saved_into_the_run(
    tmp_path: Path, tiny_run: Path, model: ExplainableModel, demo_files: tuple[Path, Path]
) -> None:
    from trustune.explain.global_importance import explain_dataset
    from trustune.explain.store import pick_examples, read_explanations, record_explanations

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    texts, labels = _labels(demo_files[1])
    explanations, importance = explain_dataset(model, texts[:16], method="occlusion", min_count=1)
    examples = pick_examples(explanations, labels[:16], per_kind=2)
    assert 0 < len(examples) <= 4
    record_explanations(run, data={"path": "test.csv", "rows": 16}, importance=importance,
                        examples=examples)  # fmt: skip
    stored = read_explanations(run)
    assert stored["global"]["method"] == "occlusion" and len(stored["examples"]) == len(examples)
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert manifest["explanations"]["global"]["texts"] == 16
    report = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="explanations"' in report and "Top words per class" in report
    assert "<mark style=" in report


def test_public_surface() -> None:
    import trustune.explain as explain

    for name in explain.__all__:
        assert hasattr(explain, name), name


def _ig(scores: list[float], delta: float) -> Explanation:
    e = _explanation(["refund", "my", "card"], scores, "billing")
    return Explanation(**{**e.__dict__, "method": "integrated-gradients", "delta": delta})


def test_completeness_warning_when_the_scores_do_not_add_up() -> None:
    """Flagged above 5% of p(x) - p(baseline) + 0.001, in the result and its JSON."""
    good = _ig([0.3, 0.1, 0.2], delta=0.004)  # 0.004 of a change of 0.596: within 5%
    assert good.explained_change == pytest.approx(0.596)
    assert good.completeness_warning is None and good.to_dict()["completeness_warning"] is None
    bad = _ig([0.3, 0.1, 0.2], delta=0.076)  # the case: 15% of a change of 0.524
    warning = bad.completeness_warning
    assert warning is not None
    assert "completeness error +0.076" in warning and "p(text) - p(baseline) = +0.524" in warning
    assert "15% of it" in warning and "more integration steps (n_steps, --steps)" in warning
    assert bad.to_dict()["completeness_warning"] == warning
    assert Explanation.from_dict(bad.to_dict()) == bad
    # a change near zero: the absolute 0.001 keeps rounding noise from being flagged
    assert _ig([0.0004, 0.0, 0.0], delta=0.0009).completeness_warning is None
    assert _ig([0.0, 0.0, 0.0], delta=float("nan")).completeness_warning is not None
    assert _explanation(["a"], [0.5], "billing").completeness_warning is None  # no delta


def test_real_integrated_gradients_pass_the_completeness_check(model: ExplainableModel) -> None:
    options = ExplainOptions(n_steps=64, texts_per_batch=3, precision="fp32")
    for e in explain_texts(model, TEXTS, options=options):
        assert e.delta is not None and e.completeness_warning is None


def test_batch_page_marks_right_and_wrong_predictions() -> None:
    right = _explanation(["refund", "please"], [0.4, 0.1], "billing")
    wrong = _explanation(["app", "<crash>"], [0.2, 0.3], "billing")
    html = render_page([right, wrong], true_labels=["billing", "tech<nical>"])
    assert "✓ right: the true label is billing" in html
    assert "✗ wrong: the true label is tech&lt;nical&gt;, not billing" in html
    assert "<b>1 of 2</b> predictions right" in html and "tech<nical>" not in html
    assert (
        html.count('class="tx-card tx-right"') == 1 and html.count('class="tx-card tx-wrong"') == 1
    )
    unlabeled = render_page([right, wrong])
    assert "✓ right" not in unlabeled and "predictions right" not in unlabeled
    partly = render_page([right, wrong], true_labels=[None, "billing"])
    assert "<b>1 of 1</b> predictions right" in partly


def test_explanation_shows_itself_in_jupyter() -> None:
    e = _explanation(["<b>refund</b>", "please"], [0.4, -0.1], "billing")
    html = e._repr_html_()
    assert "<mark" in html and "&lt;b&gt;refund&lt;/b&gt;" in html and "<b>refund" not in html
    assert "predicted <b>billing</b>" in html and "<style>" in html
    flagged = _ig([0.3, 0.1, 0.2], delta=0.076)._repr_html_()
    assert "completeness error +0.076" in flagged


class _Recorder(Progress):
    """Keeps every call, to check what a long task reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | None]] = []

    def start(self, task: str, *, total: int | None = None, completed: int = 0) -> None:
        self.calls.append(("start", task, total))

    def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
        self.calls.append(("advance", task, amount))

    def message(self, text: str) -> None:
        self.calls.append(("message", text, None))

    def end(self, task: str) -> None:
        self.calls.append(("end", task, None))


def test_faithfulness_reports_its_progress(model: ExplainableModel) -> None:
    """--evaluate explains with each method, then scores: both stages advance one task."""
    recorder = _Recorder()
    evaluate_faithfulness(
        model, TEXTS, methods=["occlusion", "gradient-x-input"], random_repeats=3,
        progress=recorder,
    )  # fmt: skip
    calls = recorder.calls
    assert calls[0] == ("start", "faithfulness", 2 * 2 + 3)
    assert calls[1][0] == "message" and "faithfulness on 3 texts" in calls[1][1]
    assert calls[-1] == ("end", "faithfulness", None)
    steps = [c for c in calls if c[:2] == ("advance", "faithfulness")]
    assert sum(c[2] or 0 for c in steps) == 7
    # each method's own task runs inside, text by text
    assert ("start", "explain (occlusion)", 3) in calls
    last_explained = max(i for i, c in enumerate(calls) if c[0] == "end" and "explain" in c[1])
    scoring = [i for i, c in enumerate(calls) if c[:2] == ("advance", "faithfulness")]
    # after the last method's texts: its own step, then scoring 2 methods and 3 random rankings
    assert len([i for i in scoring if i > last_explained]) == 1 + 2 + 3

    recorder = _Recorder()
    explained = {"occlusion": explain_texts(model, TEXTS, method="occlusion")}
    score_explanations(model, TEXTS, explained, random_repeats=2, progress=recorder)
    assert recorder.calls[0] == ("start", "faithfulness", 3)
    assert sum(c[2] or 0 for c in recorder.calls if c[0] == "advance") == 3
    assert recorder.calls[-1] == ("end", "faithfulness", None)
