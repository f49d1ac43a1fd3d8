"""PII redaction: each kind, checksums that cut false positives, counts, and prediction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trustune
from trustune.privacy.redact import PII_KINDS, luhn_valid, redact_text, redact_texts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+tickets@example.co.uk today", "write to [EMAIL] today"),
        ("card 4111 1111 1111 1111 was charged", "card [CARD] was charged"),
        ("card 5500-0000-0000-0004 declined", "card [CARD] declined"),
        ("call +44 20 7946 0958 or (555) 123-4567", "call [PHONE] or [PHONE]"),
        ("from 192.168.10.20 and 2001:db8::8a2e:370:7334", "from [IP] and [IP]"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please"),
        ("ssn 123-45-6789", "ssn [SSN]"),
    ],
)
def test_each_kind_is_replaced(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "on 2023-10-12 at 12:30:45, order 12345",
        "it costs 1,299.99 and weighs 3.5 kg",
        "ratio 3:2 and 999.1.1.1",
    ],
)
def test_lookalikes_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_iban_needs_its_checksum() -> None:
    assert "[IBAN]" not in redact_text("IBAN GB00 WEST 1234 5698 7654 32 is not valid")
    assert redact_text("DE89 3704 0044 0532 0130 00") == "[IBAN]"


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_counts_per_kind_without_the_text() -> None:
    result = redact_texts(["a@b.io and c@d.io", "nothing here", "4111111111111111"])
    assert result.counts == {**dict.fromkeys(PII_KINDS, 0), "email": 2, "card": 1}
    assert result.texts_changed == 2 and result.total == 3
    assert "a@b.io" not in json.dumps(result.summary())


def test_redact_pii_training_and_prediction(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    data = tmp_path / "train.csv"
    lines = demo_files[0].read_text(encoding="utf-8").splitlines()
    lines += [f"refund to card 4111 1111 1111 1111 please {i},billing" for i in range(5)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = trustune.finetune(
        config=trustune.RunConfig.from_dict({
            "data": {"train_file": str(data)}, "model": {"name": str(tiny_model)},
            "train": {"epochs": 1, "batch_size": 16}, "privacy": {"redact_pii": True},
        }),
        output=tmp_path / "run", measure_latency=False,
    )  # fmt: skip
    privacy = run.manifest.privacy
    assert privacy is not None and privacy.redaction is not None
    redaction = privacy.redaction
    assert redaction["train"]["counts"]["card"] + redaction["validation"]["counts"]["card"] == 5
    assert privacy.dp is False
    model = trustune.load(run.path)
    assert model.redact_pii
    raw = model.predict_proba(["pay with card 4111 1111 1111 1111"])
    placeholder = model.predict_proba(["pay with card [CARD]"])
    assert raw.tolist() == placeholder.tolist()
    explained = model.explain(["pay with card 4111 1111 1111 1111"], method="occlusion")[0]
    assert "4111" not in explained.text and "4111" not in " ".join(explained.words)
