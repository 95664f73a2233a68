"""`tokenizer_metadata.json` says truthfully what reopens a saved tokenizer directory."""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections import Counter

import pytest

from sparseehr_mcore.data.timeline import ICD10CM, CodedEvent, PatientTimeline, make_bundle
from sparseehr_mcore.tokenization.metadata import METADATA_FILE, save_tokenizer
from sparseehr_mcore.tokenization.registry import resolve


def timeline() -> PatientTimeline:
    bundles = (
        make_bundle(dt.date(2020, 1, 3), [CodedEvent(ICD10CM, "E119"), CodedEvent(ICD10CM, "I10")]),
        make_bundle(dt.date(2021, 5, 9), [CodedEvent(ICD10CM, "N179")]),
    )
    return PatientTimeline("p1", {"age": "60-64", "sex": "F"}, bundles)


@pytest.fixture(params=["typed-codes", "time-gaps"])
def saved(request, tmp_path):
    plugin = resolve(request.param)
    tokenizer = plugin.from_counts(Counter(plugin.terms(timeline())), min_count=1)
    save_tokenizer(tokenizer, tmp_path)
    return tokenizer, tmp_path


def test_the_metadata_names_the_loader_that_reopens_the_directory(saved):
    tokenizer, directory = saved
    metadata = json.loads((directory / METADATA_FILE).read_text())
    module, _, function = metadata["loader"].partition(":")
    reopened = getattr(importlib.import_module(module), function)(directory)
    assert type(reopened).__name__ == metadata["class_name"] and type(reopened).__module__ == metadata["class_path"]
    assert reopened.tokens == tokenizer.tokens
    assert reopened.encode(timeline()) == tokenizer.encode(timeline())


def test_megatron_cores_tokenizer_loader_cannot_reopen_it(saved):
    """What the metadata module's docstring and docs/data.md say: if Megatron-Core ever opens these
    directories, this fails, and the docs should then say how."""
    from megatron.core.tokenizers import MegatronTokenizer

    _, directory = saved
    with pytest.raises((KeyError, AttributeError, AssertionError, ValueError)):
        MegatronTokenizer.from_pretrained(str(directory))
    # Its custom-class route cannot be reached from a JSON file either: the class path stays a string.
    metadata = json.loads((directory / METADATA_FILE).read_text())
    as_custom_class = {**metadata, "tokenizer_class": True, "tokenizer_class_path": metadata["class_path"],
                       "tokenizer_class_name": metadata["class_name"]}  # fmt: skip
    with pytest.raises(AttributeError, match="'str' object has no attribute"):
        MegatronTokenizer.from_pretrained(str(directory), metadata_path=as_custom_class)
