"""Our vocabulary as a Hugging Face tokenizer that `AutoTokenizer.from_pretrained` loads.

EHR tokens are whole codes (`DX:I10`, `[EOD]`): a `tokenizers` WordLevel model over our vocabulary
with whitespace splitting, so a token string maps to exactly its id and back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from sparseehr_mcore.export.kinds import ConversionError


@dataclass(kw_only=True)
class SpecialTokens:
    """Our special token strings, by role (None: the vocabulary has no such token)."""

    pad: str | None = "[PAD]"
    eos: str | None = "[EOD]"
    unk: str | None = "[UNK]"
    bos: str | None = None


def build_hf_tokenizer(vocab: dict[str, int], *, specials: SpecialTokens) -> PreTrainedTokenizerFast:
    """A fast tokenizer over `vocab` (token -> id, ids 0..n-1) with our special tokens.

    Raises:
        ConversionError: ids are not 0..n-1, or a special token is not in the vocabulary.
    """
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ConversionError("tokenizer vocabulary ids must be exactly 0..n-1")
    roles = {f"{role}_token": token for role, token in vars(specials).items() if token is not None}
    for role, token in roles.items():
        if token not in vocab:
            raise ConversionError(f"special token {role}={token!r} is not in the vocabulary")
    # WordLevel needs an unknown token when one exists; ids are kept exactly as ours.
    backend = Tokenizer(models.WordLevel(vocab=dict(vocab), unk_token=specials.unk))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # No decoder: the backend joins decoded tokens with single spaces, the inverse of WhitespaceSplit.
    return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False, **roles)


def vocab_from_saved_tokenizer(directory: str | Path) -> dict[str, int]:
    """The token -> id map of a tokenizer saved by `sparseehr_mcore.tokenization` (its vocab.json)."""
    path = Path(directory) / "vocab.json"
    if not path.is_file():
        raise ConversionError(f"{directory} holds no saved SparseEHR tokenizer (no vocab.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def save_hf_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """Write tokenizer.json and tokenizer_config.json (stable bytes for one library version)."""
    tokenizer.save_pretrained(str(directory))
    # Name the generic fast class (transformers 4 does not know transformers 5's `TokenizersBackend`).
    config_path = Path(directory) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def vocab_from_tokenizer(tokenizer) -> dict[str, int]:
    """The token -> id map of a loaded `sparseehr_mcore.tokenization` tokenizer (its `tokens` list)."""
    return {token: index for index, token in enumerate(tokenizer.tokens)}
