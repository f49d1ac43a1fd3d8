"""Membership-inference audit: can an attacker tell the training rows from unseen ones?

Each attack gives every example a score (higher: "was in training"); the audit reports how
well the scores separate members from non-members: ROC-AUC, the true-positive rate at 1% and
0.1% false positives (the regime that matters, Carlini et al. 2022), each with a bootstrap
confidence interval, and the ROC curve. Attacks (a registry by name):

- ``loss``: the loss threshold attack (Yeom et al. 2018): members have lower loss.
- ``neighbourhood``: calibrated per example without extra training (Mattern et al. 2023):
  the loss of the text against the loss of small perturbations of it (words dropped or
  swapped); a memorised text is much better fit than its neighbours.
- ``reference``: difficulty calibration with a reference model trained on other data
  (Watson et al. 2022): the target's loss against the reference model's loss.

An audit measures what these attacks achieve: a lower bound on leakage, not a proof that
there is none. A DP guarantee bounds every attack: TPR <= e^ε * FPR + δ.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trustune.errors import DataError, TrustuneError
from trustune.manifest import DataPart, Manifest, PrivacyRecord

if TYPE_CHECKING:
    from trustune.loaded import LoadedRun

__all__ = [
    "ATTACKS",
    "AUDIT_FILE",
    "STABLE_ABOVE_THRESHOLD",
    "AttackResult",
    "AuditData",
    "attack_metrics",
    "audit_privacy",
    "neighbours",
    "per_example_loss",
    "read_audit",
    "reading",
    "register_attack",
    "run_attacks",
    "unstable_rates",
]

AUDIT_FILE = "privacy_audit.json"
_FPRS = (0.01, 0.001)
_ROC_POINTS = 200
# A TPR at a given FPR is read off the threshold that lets FPR * n of the n non-members through.
# With fewer than 10 of them above it, the threshold is one of the few highest non-member
# scores and moves with a single row: the figure is reported, and called unstable.
STABLE_ABOVE_THRESHOLD = 10

ProbaFn = Callable[[Sequence[str]], np.ndarray]
# the loss of every example, from texts and their targets (as the task encodes them), and the
# second texts for a run trained on text pairs: (texts, targets) or (texts, targets, pairs)
LossFn = Callable[..., np.ndarray]


def per_example_loss(
    predict_proba: ProbaFn, texts: Sequence[str], labels: Sequence[int]
) -> np.ndarray:
    """Cross-entropy of the true label, one value per text."""
    probs = np.asarray(predict_proba(list(texts)), dtype=np.float64)
    picked = probs[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return -np.log(np.clip(picked, 1e-12, 1.0))


def neighbours(text: str, *, count: int, seed: int) -> list[str]:
    """``count`` perturbations of ``text``: about 15% of its words dropped or swapped."""
    words = text.split()
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        changed = list(words)
        for _ in range(max(1, round(0.15 * len(words)))):
            if len(changed) > 2 and rng.random() < 0.5:
                del changed[rng.randrange(len(changed))]
            elif len(changed) > 1:
                i = rng.randrange(len(changed) - 1)
                changed[i], changed[i + 1] = changed[i + 1], changed[i]
        out.append(" ".join(changed) or text)
    return out


@dataclass
class AuditData:
    """What the attacks see: members and non-members with targets, and the models' per-example
    losses (the task's loss: the membership signal of every task)."""

    texts: list[str]
    labels: list[Any]
    is_member: np.ndarray  # (n,) bool
    loss: LossFn
    reference_loss: LossFn | None = None
    neighbour_count: int = 8
    seed: int = 0
    pairs: list[str] | None = None  # the second texts, for a run trained on text pairs

    def losses(
        self, texts: Sequence[str], labels: Sequence[Any], pairs: Sequence[str] | None, *,
        reference: bool = False,
    ) -> np.ndarray:  # fmt: skip
        """The target model's (or the reference model's) loss of each example."""
        fn = self.reference_loss if reference else self.loss
        assert fn is not None
        return fn(texts, labels) if pairs is None else fn(texts, labels, pairs)


AttackFn = Callable[[AuditData], np.ndarray]
ATTACKS: dict[str, tuple[str, AttackFn]] = {}


def register_attack(name: str, description: str) -> Callable[[AttackFn], AttackFn]:
    """Add an attack to the registry; a duplicate name is an error that lists the known ones."""

    def add(fn: AttackFn) -> AttackFn:
        if name in ATTACKS:
            raise ValueError(f"attack {name!r} is already registered; known: {sorted(ATTACKS)}")
        ATTACKS[name] = (description, fn)
        return fn

    return add


@register_attack("loss", "loss threshold (Yeom et al. 2018)")
def _loss_attack(data: AuditData) -> np.ndarray:
    return -data.losses(data.texts, data.labels, data.pairs)


@register_attack("neighbourhood", "loss calibrated by perturbed neighbours (Mattern et al. 2023)")
def _neighbourhood_attack(data: AuditData) -> np.ndarray:
    own = data.losses(data.texts, data.labels, data.pairs)
    k = data.neighbour_count
    texts = [
        n for i, t in enumerate(data.texts) for n in neighbours(t, count=k, seed=data.seed + i)
    ]
    pairs = None  # a pair's neighbours perturb both of its texts (with seeds of their own)
    if data.pairs is not None:
        first = data.seed + len(data.texts)
        pairs = [
            n for i, t in enumerate(data.pairs) for n in neighbours(t, count=k, seed=first + i)
        ]
    labels = [y for y in data.labels for _ in range(k)]
    around = data.losses(texts, labels, pairs).reshape(len(data.texts), k)
    return np.asarray(around.mean(axis=1) - own)


@register_attack("reference", "loss calibrated by a reference model (Watson et al. 2022)")
def _reference_attack(data: AuditData) -> np.ndarray:
    assert data.reference_loss is not None
    target = data.losses(data.texts, data.labels, data.pairs)
    reference = data.losses(data.texts, data.labels, data.pairs, reference=True)
    return np.asarray(reference - target)


@dataclass
class AttackResult:
    """How well one attack's scores separate members from non-members."""

    name: str
    description: str
    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr: dict[str, float]  # "0.01" -> TPR
    tpr_at_fpr_ci: dict[str, tuple[float, float]]
    advantage: float  # max over thresholds of TPR - FPR
    roc: dict[str, list[float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "auc": self.auc,
            "auc_ci": list(self.auc_ci), "tpr_at_1pct_fpr": self.tpr_at_fpr["0.01"],
            "tpr_at_1pct_fpr_ci": list(self.tpr_at_fpr_ci["0.01"]),
            "tpr_at_0.1pct_fpr": self.tpr_at_fpr["0.001"],
            "tpr_at_0.1pct_fpr_ci": list(self.tpr_at_fpr_ci["0.001"]),
            "advantage": self.advantage, "roc": self.roc,
        }  # fmt: skip


def _auc(members: np.ndarray, others: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half): P(member score > non-member score)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([members, others]))
    n1, n0 = len(members), len(others)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _tpr_at(members: np.ndarray, others: np.ndarray, fpr: float) -> float:
    """The highest TPR whose threshold flags at most ``fpr`` of the non-members."""
    allowed = math.floor(fpr * len(others))  # non-members allowed above the threshold
    ordered = np.sort(others)[::-1]
    threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
    return float(np.mean(members > threshold))


def attack_metrics(
    name: str, description: str, scores: np.ndarray, is_member: np.ndarray, *,
    bootstrap: int = 1000, seed: int = 0,
) -> AttackResult:  # fmt: skip
    """AUC, TPR at 1% / 0.1% FPR with 95% bootstrap intervals, and a thinned ROC curve."""
    from sklearn.metrics import roc_curve

    members, others = scores[is_member], scores[~is_member]
    auc = _auc(members, others)
    tprs = {str(f): _tpr_at(members, others, f) for f in _FPRS}
    rng = np.random.default_rng(seed)
    boot_auc: list[float] = []
    boot_tpr: dict[str, list[float]] = {str(f): [] for f in _FPRS}
    for _ in range(bootstrap):
        m = members[rng.integers(0, len(members), len(members))]
        o = others[rng.integers(0, len(others), len(others))]
        boot_auc.append(_auc(m, o))
        for f in _FPRS:
            boot_tpr[str(f)].append(_tpr_at(m, o, f))

    def interval(values: list[float], point: float) -> tuple[float, float]:
        if not values:
            return (point, point)
        lo, hi = np.percentile(values, [2.5, 97.5])
        return (round(float(lo), 4), round(float(hi), 4))

    fpr, tpr, _ = roc_curve(is_member.astype(int), scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), _ROC_POINTS)).round().astype(int))
    return AttackResult(
        name=name, description=description, auc=round(auc, 4),
        auc_ci=interval(boot_auc, auc), tpr_at_fpr={k: round(v, 4) for k, v in tprs.items()},
        tpr_at_fpr_ci={k: interval(boot_tpr[k], tprs[k]) for k in tprs},
        advantage=round(float(np.max(tpr - fpr)), 4),
        roc={"fpr": [round(float(x), 5) for x in fpr[keep]], "tpr": [round(float(x), 5) for x in tpr[keep]]},
    )  # fmt: skip


def run_attacks(
    data: AuditData, *, attacks: Sequence[str] | None = None, bootstrap: int = 1000
) -> list[AttackResult]:
    """Score with each attack (``reference`` only when a reference model is given)."""
    names = list(attacks) if attacks is not None else [
        n for n in ATTACKS if n != "reference" or data.reference_loss is not None
    ]  # fmt: skip
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise TrustuneError(f"unknown attack(s) {unknown}; known: {sorted(ATTACKS)}")
    results = []
    for name in names:
        description, fn = ATTACKS[name]
        scores = np.asarray(fn(data), dtype=np.float64)
        results.append(
            attack_metrics(
                name, description, scores, data.is_member, bootstrap=bootstrap, seed=data.seed
            )
        )
    return results


def _fpr_name(fpr: float) -> str:
    return f"{100 * fpr:g}%"


def unstable_rates(non_members: int) -> dict[str, str]:
    """For each false-positive rate whose TPR rests on too few non-members: why it is unstable."""
    out = {}
    for fpr in _FPRS:
        needed = math.ceil(STABLE_ABOVE_THRESHOLD / fpr)
        if non_members >= needed:
            continue
        allowed = math.floor(fpr * non_members)
        if allowed == 0:
            where = "the highest non-member score (so it measures TPR at 0% FPR)"
        else:
            where = f"the {allowed + 1}th highest of them"
        out[str(fpr)] = (
            f"TPR at {_fpr_name(fpr)} FPR is unstable: {_fpr_name(fpr)} of {non_members} "
            f"non-members is {fpr * non_members:.3g} row(s), so its threshold is {where} and one "
            f"row more or less moves it; a stable figure needs >= {needed:,} non-members "
            f"({STABLE_ABOVE_THRESHOLD} above the threshold)"
        )
    return out


def _file_part(path: Path, manifest: Manifest) -> str:
    """What ``path`` is to the run: its whole training file ("train"), a training file the run
    split ("split"), its separate validation file ("validation"), or another file ("other")."""
    from trustune.data import file_sha256

    train = manifest.data.train or DataPart()
    validation = manifest.data.validation or DataPart()
    sha = file_sha256(path)
    if sha == train.sha256:
        return "split" if validation.split_from_train else "train"
    if sha == validation.sha256:
        return "validation"
    return "other"


def _run_split(path: Path, classifier: Any) -> Any:
    """The run's own train/validation split of its training file, redone as training did it."""
    from trustune.data import load_training_data

    manifest: Manifest = classifier.manifest
    split = load_training_data(
        path, text_column=manifest.text_column, label_column=manifest.label_column,
        pair_column=manifest.text_pair_column,
        validation_fraction=float(manifest.setting("data", "validation_fraction", 0.1)),
        skip_bad_rows=bool(manifest.setting("data", "skip_bad_rows", False)),
        seed=int(manifest.setting("train", "seed", 42)), stratified=classifier.task.stratified,
    )  # fmt: skip
    recorded = manifest.data
    got = (split.train.info["rows"], split.validation.info["rows"])
    want = tuple(part.rows if part else None for part in (recorded.train, recorded.validation))
    if got != want:
        raise DataError(
            f"{path} is the run's training file, but splitting it as the run did gave "
            f"{got[0]} training and {got[1]} validation rows, not the {want[0]} and {want[1]} "
            "the manifest records; pass files of training rows and of unseen rows instead"
        )
    return split


def _read_rows(
    path: str | Path, classifier: Any, limit: int, seed: int, *, members: bool
) -> tuple[list[str], list[str] | None, list[Any], dict[str, Any], list[str]]:
    """Texts, second texts (a run trained on pairs), targets, what the audit records about
    them, and notes on rows excluded.

    The run's own training file, when the run split it, gives only the rows trained on as
    members and only the held-out rows as non-members.
    """
    from trustune.data import read_labeled

    p = Path(path)
    flag = "--members" if members else "--non-members"
    part = _file_part(p, classifier.manifest)
    if members and part == "validation":
        raise DataError(
            f"--members {p} is the run's validation file: the model was never trained on its "
            "rows. Pass the training file (or a sample of its rows)"
        )
    if not members and part == "train":
        raise DataError(
            f"--non-members {p} is the run's training file: the model was trained on every "
            "row. Pass rows it never saw"
        )
    notes = []
    if part == "split":
        split = _run_split(p, classifier)
        kept, left = (split.train, split.validation) if members else (split.validation, split.train)
        texts, pairs, raw_labels = kept.texts, kept.pairs, kept.raw_labels
        rows = len(split.train) + len(split.validation)
        what = "trained on" if members else "held out for validation (never trained on)"
        other = "held out for validation" if members else "trained on"
        notes.append(
            f"{flag} {p} is the run's training file, which the run split: the audit uses the "
            f"{len(kept)} row(s) it {what} and excluded the {len(left)} row(s) it {other}"
        )
        info: dict[str, Any] = {
            "path": str(p), "sha256": kept.info["sha256"], "rows": rows,
            "part": "training rows of the run's split" if members
            else "validation rows of the run's split",
            "excluded_rows": len(left),
        }  # fmt: skip
    else:
        labeled, _ = read_labeled(
            p, text_column=classifier.manifest.text_column,
            label_column=classifier.manifest.label_column,
            pair_column=classifier.manifest.text_pair_column, pairs=classifier.pairs,
        )  # fmt: skip
        texts, pairs, raw_labels = labeled.texts, labeled.pairs, labeled.raw_labels
        info = {k: labeled.info[k] for k in ("path", "sha256", "rows")}
        info["part"] = "the whole file"
        info["excluded_rows"] = 0
    from trustune.data import LabeledData

    targets = LabeledData(texts=list(texts), raw_labels=list(raw_labels))
    classifier.task.encode(targets, source=str(p))
    labels = targets.labels
    order = list(range(len(texts)))
    if len(order) > limit:
        order = sorted(random.Random(seed).sample(order, limit))
    info["used"] = len(order)
    kept_pairs = None if pairs is None else [pairs[i] for i in order]
    return [texts[i] for i in order], kept_pairs, [labels[i] for i in order], info, notes


def reading(results: Sequence[AttackResult], privacy: PrivacyRecord | None) -> str:
    """A plain-language reading of the audit for the report."""
    strongest = max(results, key=lambda r: r.auc)
    lo, hi = strongest.auc_ci
    parts = []
    if lo <= 0.5 <= hi or hi < 0.55:
        parts.append(
            f"None of the attacks told training rows from unseen rows clearly better than a coin "
            f"flip: the strongest ({strongest.name}) reached AUC {strongest.auc:.3f} "
            f"(95% CI {lo:.3f} to {hi:.3f}; 0.5 is chance)."
        )
    else:
        parts.append(
            f"The {strongest.name} attack tells training rows from unseen rows better than chance: "
            f"AUC {strongest.auc:.3f} (95% CI {lo:.3f} to {hi:.3f}; 0.5 is chance), and at 1% false "
            f"positives it finds {100 * strongest.tpr_at_fpr['0.01']:.1f}% of the training rows. "
            "The model has memorised something about individual training rows."
        )
    if privacy is not None and privacy.dp:
        eps, delta = float(privacy.epsilon or 0), float(privacy.delta or 0)
        bound = min(1.0, math.exp(eps) * 0.01 + delta)
        parts.append(
            f"The model was trained with differential privacy (ε = {eps:.2f}, δ = {delta:.2g}): "
            f"no attack can find more than {100 * bound:.1f}% of the training rows at 1% false "
            "positives"
            + (" — at this ε the bound allows everything, so the evidence is the audit itself."
               if bound >= 1.0 else ".")
        )  # fmt: skip
    else:
        parts.append(
            "The model was trained without differential privacy: nothing bounds an attack."
        )
    parts.append(
        "An audit shows what these attacks achieve, a lower bound on leakage; it cannot prove "
        "that no stronger attack exists."
    )
    return " ".join(parts)


def audit_privacy(
    classifier: LoadedRun, *, members: str | Path, non_members: str | Path,
    reference: LoadedRun | None = None, limit: int = 2000, neighbour_count: int = 8,
    bootstrap: int = 1000, seed: int = 0, save: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Run the membership-inference attacks against a loaded run (``trustune.load``); saves
    ``privacy_audit.json``, the manifest's ``privacy.audit`` summary and the report's Privacy
    section in its folder. The signal is the task's per-example loss, so every task is audited
    alike; ``reference`` is a loaded run of the same task trained on other data."""
    run = classifier.run_dir
    m_texts, m_pairs, m_labels, m_info, m_notes = _read_rows(
        members, classifier, limit, seed, members=True
    )
    n_texts, n_pairs, n_labels, n_info, n_notes = _read_rows(
        non_members, classifier, limit, seed + 1, members=False
    )
    if min(len(m_texts), len(n_texts)) < 10:
        raise DataError("the audit needs at least 10 members and 10 non-members")
    # a text pair is one example: the same first text with another second text is another one
    overlap = set(zip(m_texts, m_pairs or m_texts, strict=True)) & set(
        zip(n_texts, n_pairs or n_texts, strict=True)
    )
    if overlap:
        what = "text pair(s)" if classifier.pairs else "text(s)"
        raise DataError(
            f"{len(overlap)} {what} appear in both --members and --non-members; the sets must "
            "be disjoint"
        )
    reference_loss = None
    if reference is not None:
        reference_model = reference
        if (
            reference_model.task.manifest_section().get("labels")
            != classifier.task.manifest_section().get("labels")
            or reference_model.task.name != classifier.task.name
            or reference_model.pairs != classifier.pairs
        ):
            raise DataError(
                f"the reference run {reference.run_dir} has another task, other labels or other "
                f"inputs (single texts, text pairs) than {run}"
            )
        reference_loss = reference_model.per_example_loss
    data = AuditData(
        texts=m_texts + n_texts, labels=m_labels + n_labels,
        is_member=np.array([True] * len(m_texts) + [False] * len(n_texts)),
        loss=classifier.per_example_loss,
        reference_loss=reference_loss, neighbour_count=neighbour_count, seed=seed,
        pairs=None if m_pairs is None or n_pairs is None else m_pairs + n_pairs,
    )  # fmt: skip
    results = run_attacks(data, bootstrap=bootstrap)
    unstable = unstable_rates(len(n_texts))
    privacy = classifier.manifest.privacy
    strongest = max(results, key=lambda r: r.auc)
    audit = {
        "members": m_info, "non_members": n_info,
        "reference": str(reference.run_dir) if reference is not None else None,
        "neighbours": neighbour_count, "bootstrap": bootstrap, "seed": seed,
        "auc": strongest.auc, "auc_ci": list(strongest.auc_ci), "strongest_attack": strongest.name,
        "tpr_at_1pct_fpr": strongest.tpr_at_fpr["0.01"],
        "tpr_at_0.1pct_fpr": strongest.tpr_at_fpr["0.001"],
        "attacks": [r.to_dict() for r in results],
        "reading": reading(results, privacy),
        "note": (
            f"TPR at 0.1% FPR rests on the top {max(1, math.floor(0.001 * len(n_texts)))} "
            f"non-member score(s) of {len(n_texts)}; it needs >= 10,000 non-members to be stable"
        ),
        "unstable": unstable, "notes": [*m_notes, *n_notes, *unstable.values()],
    }  # fmt: skip
    if save:
        _save(run, audit)
    return audit


def _save(run_dir: Path, audit: dict[str, Any]) -> None:
    from trustune.artifact import atomic_write_json, read_metrics
    from trustune.manifest import read_manifest
    from trustune.records import save_records

    atomic_write_json(run_dir / AUDIT_FILE, audit)
    manifest = read_manifest(run_dir)
    summary = {
        k: audit[k]
        for k in ("auc", "auc_ci", "strongest_attack", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
    }
    recorded = {**summary, "members": audit["members"], "non_members": audit["non_members"]}
    privacy = dataclasses.replace(manifest.privacy or PrivacyRecord(dp=False), audit=recorded)
    save_records(run_dir, dataclasses.replace(manifest, privacy=privacy), read_metrics(run_dir))


def read_audit(run_dir: Path) -> dict[str, Any] | None:
    """The run's saved audit, if any."""
    path = Path(run_dir) / AUDIT_FILE
    if not path.is_file():
        return None
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result
