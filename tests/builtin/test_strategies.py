"""The four built-in strategies on a CNN, a ViT and a BERT-style model (tiny, random)."""

from __future__ import annotations

import pytest
import torch
from peft.tuners.lora import LoraLayer

from autotl.backbones import Backbone
from autotl.builtin.strategies import lora_frozen_depth
from autotl.models import TransferModel
from autotl.plugins import load_plugins
from autotl.testing import StrategyConformance, tiny_bert, tiny_cnn, tiny_vit
from autotl.testing.suites import changed, snapshot, train_steps

FACTORIES = {"cnn": tiny_cnn, "vit": tiny_vit, "bert": tiny_bert}


class TestFull(StrategyConformance):
    strategy_name = "full"


class TestSubset(StrategyConformance):
    strategy_name = "subset"


class TestHeadOnly(StrategyConformance):
    strategy_name = "head-only"


class TestLora(StrategyConformance):
    strategy_name = "lora"


def _model(kind: str, strategy: str, **params: object) -> tuple[TransferModel, Backbone]:
    torch.manual_seed(0)
    backbone = FACTORIES[kind]()
    head = torch.nn.Linear(backbone.feature_dim, 3)
    model = TransferModel(backbone, head)
    load_plugins(entry_points=False).strategies.get(strategy).apply(model, params)
    return model, backbone


def _count(params) -> int:  # noqa: ANN001
    return sum(p.numel() for p in params)


def _trainable(model: TransferModel) -> int:
    return _count(p for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_full_trains_every_parameter(kind: str) -> None:
    model, _ = _model(kind, "full")
    assert _trainable(model) == _count(model.parameters())


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_head_only_trains_exactly_the_head(kind: str) -> None:
    model, _ = _model(kind, "head-only")
    assert _trainable(model) == _count(model.head.parameters())
    model.train()
    assert not model.backbone.training
    assert all(not m.training for m in model.backbone.modules())
    assert model.head.training


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_subset_freezes_exactly_the_first_k_groups(kind: str) -> None:
    backbone = FACTORIES[kind]()
    for depth in range(1, backbone.n_groups):
        model, backbone = _model(kind, "subset", freeze_depth=depth)
        params = dict(model.backbone.named_parameters())
        frozen = sum(params[n].numel() for g in backbone.layer_groups[:depth] for n in g)
        assert _trainable(model) == _count(model.parameters()) - frozen
        assert model.frozen_depth == depth


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_layer_groups_cover_every_backbone_parameter_once(kind: str) -> None:
    backbone = FACTORIES[kind]()
    names = [n for group in backbone.layer_groups for n in group]
    assert sorted(names) == sorted(n for n, _ in backbone.module.named_parameters())
    assert backbone.n_groups >= 3


@pytest.mark.parametrize(("strategy", "params"), [
    ("full", {}), ("subset", {"freeze_depth": 3}), ("head-only", {}),
])
def test_one_step_changes_exactly_the_trainable_parameters(strategy: str, params: dict) -> None:
    model, backbone = _model("cnn", strategy, **params)
    trainable = {f"param:{n}" for n, p in model.named_parameters() if p.requires_grad}
    before = snapshot(model)
    train_steps(model, backbone, steps=1)
    assert {n for n in changed(before, model) if n.startswith("param:")} == trainable


def test_subset_keeps_frozen_batchnorm_statistics() -> None:
    model, backbone = _model("cnn", "subset", freeze_depth=2)
    frozen_bn = [m for m in model.frozen_modules()]
    before = [m.running_mean.clone() for fm in frozen_bn for m in fm.modules()
              if isinstance(m, torch.nn.BatchNorm2d)]
    assert before, "the frozen prefix of the CNN has BatchNorm layers"
    train_steps(model, backbone)
    after = [m.running_mean for fm in frozen_bn for m in fm.modules()
             if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def _lora_expected(model: TransferModel, backbone: Backbone, r: int) -> int:
    """r·(in + out) per adapted module, computed from the original layer shapes."""
    original = FACTORIES_BY_NAME[backbone.name]()
    modules = dict(original.module.named_modules())
    total = 0
    for target in backbone.lora_targets:
        layer = modules[target]
        if isinstance(layer, torch.nn.Linear):
            total += r * (layer.in_features + layer.out_features)
        else:
            total += r * (layer.in_channels + layer.out_channels)
    return total


FACTORIES_BY_NAME = {"test:cnn": tiny_cnn, "test:vit": tiny_vit, "test:bert": tiny_bert}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_lora_trains_adapters_and_head_only(kind: str) -> None:
    model, backbone = _model(kind, "lora", r=4, alpha=8, dropout=0.0)
    expected = _lora_expected(model, backbone, r=4) + _count(model.head.parameters())
    assert _trainable(model) == expected
    trainable_backbone = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable_backbone and all("lora_" in n for n in trainable_backbone)


@pytest.mark.parametrize(("kind", "layer_type", "suffixes"), [
    ("cnn", torch.nn.Conv2d, ("conv_pw", "conv_pwl", "conv_head")),
    ("vit", torch.nn.Linear, ("qkv", "proj")),
    ("bert", torch.nn.Linear, ("query", "value")),
])
def test_lora_wraps_conv_and_attention_models(kind: str, layer_type: type,
                                              suffixes: tuple[str, ...]) -> None:
    model, backbone = _model(kind, "lora", r=4, alpha=8, dropout=0.0)
    wrapped = {n: m for n, m in model.backbone.named_modules() if isinstance(m, LoraLayer)}
    assert set(wrapped) == set(backbone.lora_targets)
    assert all(isinstance(m.base_layer, layer_type) for m in wrapped.values())
    assert {n.rsplit(".", 1)[-1] for n in wrapped} == set(suffixes)
    if kind == "cnn":  # pointwise only: no depthwise or squeeze-excite convs
        assert all(m.base_layer.kernel_size == (1, 1) for m in wrapped.values())
        assert not any(".se." in n for n in wrapped)


def test_lora_frozen_depth_is_the_first_adapted_group() -> None:
    backbone = tiny_cnn()
    depth = lora_frozen_depth({}, backbone)
    group_modules = [{n.rsplit(".", 1)[0] for n in g} for g in backbone.layer_groups]
    assert not any(group_modules[i] & set(backbone.lora_targets) for i in range(depth))
    assert group_modules[depth] & set(backbone.lora_targets)
