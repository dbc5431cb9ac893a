"""The plugin's own tests, as any plugin author writes them: autotl's conformance suite for each
strategy (on a tiny CNN, ViT and BERT, where each applies), then what is specific to each
method and a search that compares them with LoRA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from autotl.models import TransferModel
from autotl.plugins import load_plugins
from autotl.testing import StrategyConformance, tiny_bert, tiny_cnn, tiny_vit

FACTORIES = {"cnn": tiny_cnn, "vit": tiny_vit, "bert": tiny_bert}


class TestIA3(StrategyConformance):
    strategy_name = "peft:ia3"


class TestDoRA(StrategyConformance):
    strategy_name = "peft:dora"


class TestLayerNorm(StrategyConformance):
    strategy_name = "peft:layernorm"


def _applied(kind: str, strategy: str, **params: object) -> TransferModel:
    torch.manual_seed(0)
    backbone = FACTORIES[kind]()
    model = TransferModel(backbone, torch.nn.Linear(backbone.feature_dim, 3))
    load_plugins().strategies.get(strategy).apply(model, params)
    return model


def _trainable_backbone(model: TransferModel) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.backbone.named_parameters() if p.requires_grad}


def test_listed_with_their_provider() -> None:
    out = subprocess.run([sys.executable, "-m", "autotl", "list", "strategies", "--json"],
                         capture_output=True, text=True, check=True)
    providers = {s["name"]: s["provider"] for s in json.loads(out.stdout)["names"]}
    assert {providers[n] for n in ("peft:ia3", "peft:dora", "peft:layernorm")} == {"peft-extras"}


def test_declares_the_plugin_api_it_was_written_for() -> None:
    plugins = load_plugins()
    assert plugins.info["peft-extras"].api == ">=1.1,<2"
    assert plugins.failures == []


@pytest.mark.parametrize(("kind", "expected"), [
    ("cnn", "has no LayerNorm layers"), ("vit", None), ("bert", None)])
def test_layernorm_tuning_applies_only_where_there_are_layernorms(kind: str,
                                                                  expected: str | None) -> None:
    reason = load_plugins().strategies.get("peft:layernorm").inapplicable(FACTORIES[kind]())
    assert reason == expected or expected in reason


def test_ia3_trains_one_scale_per_output_and_per_ffn_input() -> None:
    model = _applied("vit", "peft:ia3", ffn=True)
    modules = dict(tiny_vit().module.named_modules())
    expected = {}
    for name in tiny_vit().lora_targets:  # attention: a vector over output features
        expected[f"{name}.ia3_l.default"] = (modules[name].out_features, 1)
    for i in range(len(tiny_vit().module.blocks)):  # feed-forward: over input features
        fc2 = modules[f"blocks.{i}.mlp.fc2"]
        expected[f"blocks.{i}.mlp.fc2.ia3_l.default"] = (1, fc2.in_features)
    assert _trainable_backbone(model) == expected


def test_ia3_without_ffn_leaves_the_feed_forward_layers_alone() -> None:
    trained = _trainable_backbone(_applied("bert", "peft:ia3", ffn=False))
    assert trained and not any("output.dense" in n for n in trained)
    assert {n.split(".")[-3] for n in trained} == {"query", "value"}


def test_dora_trains_a_magnitude_beside_low_rank_factors() -> None:
    trained = _trainable_backbone(_applied("cnn", "peft:dora", r=4, alpha=8, dropout=0.0))
    targets = tiny_cnn().lora_targets
    kinds = {n.removeprefix(t + ".").split(".")[0] for n in trained for t in targets
             if n.startswith(t + ".")}
    assert kinds == {"lora_A", "lora_B", "lora_magnitude_vector"}
    assert len(trained) == 3 * len(targets)


def test_layernorm_tuning_trains_norms_from_the_searched_depth_on() -> None:
    backbone = tiny_vit()
    model = _applied("vit", "peft:layernorm", freeze_depth=3)
    trained = {n.split(".ln_tuning_layers")[0] for n in _trainable_backbone(model)}
    later = {n.rsplit(".", 1)[0] for g in backbone.layer_groups[3:] for n in g}
    assert trained == {n for n in later if "norm" in n.rsplit(".", 1)[-1]}
    assert not any(n.startswith(("blocks.0.", "blocks.1.")) for n in trained)
    spec = load_plugins().strategies.get("peft:layernorm")
    assert spec.frozen_depth({"freeze_depth": 3}, backbone) == 3


def _image_folder(root: Path) -> Path:
    """Three classes of six 24-px images, told apart by where a bright band is."""
    import numpy as np

    rng = np.random.default_rng(0)
    for label, name in enumerate(("left", "mid", "right")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            array = rng.integers(0, 60, size=(24, 24, 3), dtype=np.uint8)
            array[:, label * 8:(label + 1) * 8] += 180
            Image.fromarray(array).save(root / name / f"{i}.png")
    return root


def test_searched_beside_full_and_lora(tmp_path: Path) -> None:
    """``--strategies full,lora,peft:ia3,peft:dora`` on a ViT measures every one of them."""
    from autotl.study import search

    strategies = ["full", "lora", "peft:ia3", "peft:dora", "peft:layernorm"]
    rec = search(str(_image_folder(tmp_path / "images")), backbone="timm:test_vit",
                 pretrained=False, strategies=strategies, trials=5, image_size=32,
                 min_steps=4, max_steps=4, eval_points=1, batch_size=8, prior="none",
                 out=tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    best = {s["strategy"]: s["val_accuracy"] for s in rec.to_dict()["per_strategy"]}
    assert set(best) == set(strategies)
    assert all(0.0 <= v <= 1.0 for v in best.values())
