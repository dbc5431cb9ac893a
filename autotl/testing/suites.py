"""Reusable conformance suites: subclass, set the component name, and pytest runs the contract."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from autotl.backbones import Backbone, ImagePreprocessing
from autotl.models import TransferModel
from autotl.plugins import load_plugins
from autotl.registry import StrategySpec
from autotl.testing.backbones import tiny_bert, tiny_cnn, tiny_vit

NUM_CLASSES = 3
_TEXTS = ["the computer program has a bug", "love and food", "the law of science",
          "people in sport"]


def example_batch(backbone: Backbone, batch: int = 4) -> tuple[Any, torch.Tensor]:
    """A random input batch the backbone accepts, and labels."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(batch) % NUM_CLASSES
    if isinstance(backbone.preprocessing, ImagePreprocessing):
        size = backbone.preprocessing.image_size
        return torch.randn(batch, 3, size, size, generator=generator), labels
    texts = (_TEXTS * batch)[:batch]
    return backbone.preprocessing.encode(texts), labels


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer, by name."""
    state = {f"param:{n}": p.detach().clone() for n, p in model.named_parameters()}
    state.update({f"buffer:{n}": b.detach().clone() for n, b in model.named_buffers()})
    return state


def changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    """Names (``param:…``/``buffer:…``) whose values differ from ``before``."""
    after = snapshot(model)
    return {n for n, t in before.items() if not torch.equal(t, after[n])}


def train_steps(model: TransferModel, backbone: Backbone, steps: int = 2,
                lr: float = 0.1) -> None:
    """A few plain SGD steps on a random batch (two, so LoRA's zero-initialised B lets A move)."""
    inputs, labels = example_batch(backbone)
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


class StrategyConformance:
    """Contract tests for a registered strategy; set ``strategy_name`` in the subclass."""

    strategy_name: ClassVar[str] = ""
    backbone_factories: ClassVar[dict[str, Any]] = {
        "cnn": tiny_cnn, "vit": tiny_vit, "bert": tiny_bert,
    }

    @pytest.fixture(params=sorted(backbone_factories))
    def backbone(self, request: pytest.FixtureRequest) -> Backbone:
        torch.manual_seed(0)
        return self.backbone_factories[request.param]()

    @pytest.fixture
    def spec(self) -> StrategySpec:
        return load_plugins().strategies.get(self.strategy_name)

    @pytest.fixture
    def params(self, spec: StrategySpec, backbone: Backbone) -> dict[str, Any]:
        config = dict(spec.known_good(backbone)[0])
        config.pop("lr", None)
        return config

    def build(self, spec: StrategySpec, backbone: Backbone,
              params: dict[str, Any]) -> TransferModel:
        head = torch.nn.Linear(backbone.feature_dim, NUM_CLASSES)
        model = TransferModel(backbone, head)
        spec.apply(model, params)
        return model

    def test_head_trains(self, spec: StrategySpec, backbone: Backbone,
                         params: dict[str, Any]) -> None:
        model = self.build(spec, backbone, params)
        assert all(p.requires_grad for p in model.head.parameters())

    def test_only_trainable_parameters_change(self, spec: StrategySpec, backbone: Backbone,
                                              params: dict[str, Any]) -> None:
        model = self.build(spec, backbone, params)
        trainable = {f"param:{n}" for n, p in model.named_parameters() if p.requires_grad}
        before = snapshot(model)
        train_steps(model, backbone)
        moved = {n for n in changed(before, model) if n.startswith("param:")}
        assert moved <= trainable, f"frozen parameters changed: {sorted(moved - trainable)}"
        assert {f"param:head.{n}" for n, _ in model.head.named_parameters()} <= moved
        # Every trainable parameter is connected to the loss (LoRA's A matrices get exactly
        # zero gradient while B is still zero, so "received a gradient" is the contract).
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert no_grad == []

    def test_declared_frozen_prefix_is_untouched(self, spec: StrategySpec, backbone: Backbone,
                                                 params: dict[str, Any]) -> None:
        depth = spec.frozen_depth(params, backbone)
        assert 0 <= depth <= backbone.n_groups
        model = self.build(spec, backbone, params)
        frozen = {name for group in backbone.layer_groups[:depth] for name in group}
        prefixes = tuple(name.rsplit(".", 1)[0] + "." for name in frozen)
        before = snapshot(model)
        train_steps(model, backbone)
        moved = changed(before, model)
        # Neither weights nor running statistics inside the frozen prefix may change.
        touched = [n for n in moved
                   if n.split(":", 1)[1].removeprefix("backbone.").startswith(prefixes)]
        assert touched == []
