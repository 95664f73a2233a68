"""The paper's typed-code tokenizer (the default plugin, name `typed-codes`).

Demographics prefix, then `[BEGIN] DX:E119 PX:0DB6 CPT:99213 [END]` per day bundle, then `[EOD]`;
see `sparseehr_mcore.tokenization.typed_codes` for the full scheme.
"""

from __future__ import annotations

from sparseehr_mcore.tokenization.typed_codes import TypedCodeTokenizerBase


class TypedCodeTokenizer(TypedCodeTokenizerBase):
    """Typed diagnosis/procedure tokens in day bundles; no time information between bundles."""

    name = "typed-codes"
    version = "1"
    # tests/unit/data/test_data_typed_frames.py proves both equal the per-timeline paths.
    bulk_term_counts = True
    bulk_encoding = True
