"""Size limits for the small files of a model folder, checked before anything parses them.

A real tokenizer.json is a few MB (about 35 MB for the largest vocabularies); parsing one takes
several times its size in memory, so a crafted or broken file is refused by its size first.
"""

from __future__ import annotations

from pathlib import Path

from trustune.errors import ModelError

__all__ = ["FILE_LIMITS", "check_file_size", "check_tokenizer_folder", "tokenizer_error"]

_PARSED = "tokenizer.json"

_MiB = 1024 * 1024
FILE_LIMITS = {
    "tokenizer.json": 64 * _MiB,
    "vocab.txt": 32 * _MiB,
    "vocab.json": 32 * _MiB,
    "merges.txt": 32 * _MiB,
    "spiece.model": 32 * _MiB,
    "sentencepiece.bpe.model": 32 * _MiB,
    "tokenizer.model": 32 * _MiB,
    "tokenizer_config.json": 4 * _MiB,
    "special_tokens_map.json": 4 * _MiB,
    "added_tokens.json": 4 * _MiB,
    "config.json": 4 * _MiB,
}


def check_file_size(name: str, size: int, *, source: str) -> None:
    """Refuse a model-folder file larger than its limit (files without one are not checked)."""
    limit = FILE_LIMITS.get(Path(name).name)
    if limit is not None and size > limit:
        raise ModelError(
            f"{source}/{name} is {size / _MiB:.1f} MiB, more than the {limit // _MiB} MiB a "
            f"{Path(name).name} may have; it is damaged or not this model's. Restore it from a "
            "good copy"
        )


def check_tokenizer_folder(folder: Path) -> None:
    """The size limits for every limited file present in a model folder, then tokenizer.json
    parsed by the tokenizers library (transformers would name neither the file nor the fault)."""
    for name in FILE_LIMITS:
        path = folder / name
        if path.is_file():
            check_file_size(name, path.stat().st_size, source=str(folder))
    path = folder / _PARSED
    if path.is_file():
        from tokenizers import Tokenizer

        try:
            Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a bare Exception
            raise tokenizer_error(str(folder), {_PARSED}, e) from None


def tokenizer_error(source: str, names: set[str], error: BaseException) -> ModelError:
    """One line naming the tokenizer file that does not parse (the library says only why)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    file = "tokenizer.json" if "tokenizer.json" in names else "tokenizer files"
    return ModelError(
        f"cannot load the tokenizer: {source}/{file} is malformed ({first[:200]}); restore it "
        "from a good copy of the model"
    )
