"""The plugin's own tests, written as any plugin author would: autotl's conformance suite plus
what is specific to BitFit."""

from __future__ import annotations

import torch

from autotl.models import TransferModel
from autotl.plugins import load_plugins
from autotl.testing import StrategyConformance, tiny_cnn


class TestBitFitContract(StrategyConformance):
    strategy_name = "extra:bitfit"


def test_found_through_its_entry_point() -> None:
    plugins = load_plugins()
    assert plugins.strategies.get("extra:bitfit").provider == "extra-strategies"
    assert "entry point from autotl-extra-strategies" in plugins.info["extra-strategies"].source


def test_only_biases_and_the_head_train() -> None:
    backbone = tiny_cnn()
    model = TransferModel(backbone, torch.nn.Linear(backbone.feature_dim, 3))
    load_plugins().strategies.get("extra:bitfit").apply(model, {})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters()
                         if n.endswith(".bias") and n.startswith("backbone.")} | {
        "head.weight", "head.bias"}
