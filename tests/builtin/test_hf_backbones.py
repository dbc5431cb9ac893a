"""The ``hf:`` namespace through the backbone suite, on a tiny BERT saved to a local folder
(what ``hf:/path/to/model`` reads)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from autotl.testing import BackboneConformance, tiny_bert

TINY_BERT = Path(tempfile.mkdtemp(prefix="autotl-test-tiny-bert-"))


@pytest.fixture(scope="module", autouse=True)
def tiny_bert_folder() -> Path:
    """A 2-layer random BERT's config and tokenizer files, as a local model folder."""
    backbone = tiny_bert()
    backbone.module.encoder.config.save_pretrained(TINY_BERT)
    backbone.preprocessing.tokenizer.save_pretrained(TINY_BERT)
    return TINY_BERT


class TestLocalBert(BackboneConformance):
    backbone_name = f"hf:{TINY_BERT}"
