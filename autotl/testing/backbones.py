"""Tiny random backbones (a CNN, a ViT, a 2-layer BERT) that build without any download.

Their random weights are seeded, so every build gives the same weights, as pretrained ones
would: a model saved from a search over them reloads onto the same backbone.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
import tempfile
from pathlib import Path

from autotl.backbones import Backbone, hf_backbone, timm_backbone

WEIGHTS_SEED = 0

_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    w for w in (
        "the a an of to and in is it that for on with as was at by be this are from or have "
        "not but what all were when we there can more if no out so said up about than its "
        "computer program bug code data love food sport law science life time people"
    ).split()
]


def tiny_cnn() -> Backbone:
    """timm ``test_efficientnet``: depthwise-separable blocks with 1×1 convs and BatchNorm."""
    with _seeded():
        return timm_backbone("test_efficientnet", pretrained=False, name="test:cnn")


def tiny_vit() -> Backbone:
    """timm ``test_vit``: a small ViT with a fused ``qkv`` projection."""
    with _seeded():
        return timm_backbone("test_vit", pretrained=False, name="test:vit")


def tiny_bert(num_layers: int = 2, hidden: int = 32) -> Backbone:
    """A random 2-layer BERT with a small word-piece vocabulary; no files needed."""
    from transformers import BertConfig, BertTokenizerFast

    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers 5
        tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(_VOCAB)})
    else:
        folder = Path(tempfile.mkdtemp(prefix="autotl-tiny-bert-"))
        (folder / "vocab.txt").write_text("\n".join(_VOCAB) + "\n")
        tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(_VOCAB),
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
    )
    with _seeded():
        return hf_backbone(
            "tiny-bert", pretrained=False, name="test:bert", config=config,
            tokenizer=tokenizer, max_length=32,
        )


def _seeded() -> contextlib.AbstractContextManager[None]:
    """Seeded initialisation that leaves the caller's RNG as it was."""
    import torch

    @contextlib.contextmanager
    def seeded() -> Iterator[None]:
        with torch.random.fork_rng():
            torch.manual_seed(WEIGHTS_SEED)
            yield

    return seeded()
