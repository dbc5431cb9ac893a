"""Tiny components and reusable conformance suites for plugin authors (like ``optuna.testing``).

Subclass a suite, name the component, and pytest checks the contract the search relies on::

    from autotl.testing import BackboneConformance, HeadConformance, StrategyConformance

    class TestMyStrategy(StrategyConformance):
        strategy_name = "my:bitfit"

- :class:`BackboneConformance` (``backbone_name``): builds offline with ``pretrained=False``;
  its module maps a batch from its own preprocessing to ``[batch, feature_dim]``; layer groups
  cover every parameter exactly once, in forward order; every parameter reaches the output;
  LoRA targets are existing Linear/Conv modules; ``stages()``, when given, reproduce the output
  and never run a later group's modules early; ``weights_id`` is stable; ``copy()`` is
  independent.
- :class:`HeadConformance` (``head_name``): logits of shape ``[batch, num_classes]``; every
  parameter trains; ``suggest`` names its parameters ``<head>.<param>``; ``default_params`` lie
  inside that space.
- :class:`StrategyConformance` (``strategy_name``): on a tiny CNN, ViT and BERT, applicability
  is ``None`` or a reason; where it applies, the head trains, every trainable parameter gets a
  gradient, nothing else changes, the declared frozen prefix stays exactly unchanged
  (weights and running statistics), ``suggest`` names are ``<strategy>.<param>``, and
  known-good configs lie inside ``lr_range`` and the space.
- :class:`DatasetConformance` (``dataset_name``): ``load()`` gives a ``DatasetDict`` with
  ``train`` (and optionally ``test``), an ``image``/``text`` column and a ``ClassLabel``
  ``label`` with every class in train; with ``needs_network = True``, loading offline fails
  with an autotl error naming the dataset.
- Every suite: listing the plugins imports no torch.

Samplers, pruners and trial listeners are tested with the pytest fixtures in
:mod:`autotl.testing.fixtures`.
"""

from __future__ import annotations

from autotl.testing.backbones import tiny_bert, tiny_cnn, tiny_vit
from autotl.testing.inputs import example_batch, tiny_images, tiny_labels, tiny_texts
from autotl.testing.suites import (
    BackboneConformance,
    DatasetConformance,
    HeadConformance,
    StrategyConformance,
    changed,
    snapshot,
    train_steps,
)

__all__ = [
    "BackboneConformance",
    "DatasetConformance",
    "HeadConformance",
    "StrategyConformance",
    "changed",
    "example_batch",
    "snapshot",
    "tiny_bert",
    "tiny_cnn",
    "tiny_images",
    "tiny_labels",
    "tiny_texts",
    "tiny_vit",
    "train_steps",
]
