"""Backbones built from timm and transformers models."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotl.backbones import hf_backbone
from autotl.testing.backbones import tiny_bert


def test_loading_a_saved_text_model_prints_no_progress_bar(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`autotl predict` and load_model print predictions, not transformers' "Loading weights"
    bar; and the caller's own progress-bar setting is left as it was."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    tiny = tiny_bert()
    BertModel(tiny.module.encoder.config).save_pretrained(tmp_path)
    tiny.preprocessing.tokenizer.save_pretrained(tmp_path)
    capfd.readouterr()
    assert hf_logging.is_progress_bar_enabled()
    backbone = hf_backbone(tmp_path, pretrained=True)
    assert backbone.feature_dim == tiny.feature_dim
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s" not in err, err
    assert hf_logging.is_progress_bar_enabled()
