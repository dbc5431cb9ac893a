"""PEFT methods beyond LoRA as autotl strategies, each built from PEFT's own config class.

- ``peft:ia3`` — (IA)³ (Liu et al., 2022; ``IA3Config``): learned vectors rescale the outputs
  of the backbone's LoRA targets (attention projections, or pointwise convs on a CNN) and,
  if searched so, the inputs of the feed-forward down-projections.
- ``peft:dora`` — DoRA (Liu et al., 2024; ``LoraConfig(use_dora=True)``): LoRA on the
  direction of each adapted weight plus a trained magnitude per output.
- ``peft:layernorm`` — LayerNorm tuning (``LNTuningConfig``): trains copies of the LayerNorm
  layers from a searched depth on; it does not apply to backbones without LayerNorm (a
  BatchNorm CNN), and the search leaves it out there, saying so.

Adapters are injected into the backbone module with ``peft.inject_adapter_in_model`` on exact
module names (a full-match pattern, so ``norm`` never catches ``patch_embed.norm``). Nothing
heavy is imported until a strategy is applied. Learning-rate ranges and known-good configs
follow the methods' papers and LoRA's measured range in autotl; they are not tuned here.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import autotl

if TYPE_CHECKING:  # pragma: no cover - keeps torch off the listing path
    import optuna
    from torch import nn

    from autotl.backbones import Backbone
    from autotl.models import TransferModel

AUTOTL_PLUGIN_API = ">=1.1,<2"
DORA_RANKS = (4, 8, 16)
DORA_ALPHAS = (8, 16, 32)


def full_match(names: Iterable[str]) -> str:
    """A pattern PEFT full-matches against module names: exactly these modules."""
    return "^(?:" + "|".join(re.escape(name) for name in names) + ")$"


def _owner(parameter: str) -> str:
    return parameter.rsplit(".", 1)[0]


def _first_group_with_modules(backbone: Backbone, modules: Iterable[str]) -> int:
    """Groups before the first one holding a parameter of ``modules`` stay exactly as they
    were pretrained (what the activation cache may reuse)."""
    names = set(modules)
    return backbone.first_group_with(lambda parameter: _owner(parameter) in names)


def _mark_trainable(module: nn.Module, marker: str) -> None:
    for name, param in module.named_parameters():
        param.requires_grad_(marker in name)


def _no_targets(backbone: Backbone) -> str | None:
    if not backbone.lora_targets:
        return f"{backbone.name} names no adapter target modules (its lora_targets is empty)"
    return None


# -- IA3 ------------------------------------------------------------------------------------------


def ffn_down_projections(module: nn.Module) -> list[str]:
    """The feed-forward blocks' down-projections: timm's ``mlp.fc2``, BERT's ``output.dense``
    (not the attention output's)."""
    from torch import nn

    return [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear)
            and (name.endswith("mlp.fc2")
                 or (name.endswith(".output.dense") and ".attention." not in name))]


def suggest_ia3(trial: optuna.Trial, backbone: Backbone) -> dict[str, Any]:
    if not ffn_down_projections(backbone.module):
        return {}
    return {"ffn": trial.suggest_categorical("peft:ia3.ffn", [True, False])}


def _ia3_targets(lora_targets: list[str], module: nn.Module,
                 params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    ffn = ffn_down_projections(module) if params.get("ffn", False) else []
    return list(lora_targets) + ffn, ffn


def apply_ia3(model: TransferModel, params: Mapping[str, Any]) -> None:
    from peft import IA3Config, inject_adapter_in_model

    targets, ffn = _ia3_targets(model.lora_targets, model.backbone, params)
    config = IA3Config(target_modules=full_match(targets),
                       feedforward_modules=full_match(ffn) if ffn else [])
    inject_adapter_in_model(config, model.backbone)
    _mark_trainable(model.backbone, "ia3_")


def ia3_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    targets, _ = _ia3_targets(backbone.lora_targets, backbone.module, params)
    return _first_group_with_modules(backbone, targets)


def ia3_known_good(backbone: Backbone) -> list[dict[str, Any]]:
    if ffn_down_projections(backbone.module):
        return [{"lr": 3e-3, "ffn": True}]
    return [{"lr": 3e-3}]


# -- DoRA -----------------------------------------------------------------------------------------


def suggest_dora(trial: optuna.Trial, backbone: Backbone) -> dict[str, Any]:
    return {
        "r": trial.suggest_categorical("peft:dora.r", list(DORA_RANKS)),
        "alpha": trial.suggest_categorical("peft:dora.alpha", list(DORA_ALPHAS)),
        "dropout": trial.suggest_float("peft:dora.dropout", 0.0, 0.2),
    }


def apply_dora(model: TransferModel, params: Mapping[str, Any]) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=int(params["r"]), lora_alpha=int(params["alpha"]),
                        lora_dropout=float(params.get("dropout", 0.0)), use_dora=True,
                        target_modules=full_match(model.lora_targets))
    inject_adapter_in_model(config, model.backbone)
    _mark_trainable(model.backbone, "lora_")


def dora_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    return _first_group_with_modules(backbone, backbone.lora_targets)


def dora_known_good(backbone: Backbone) -> list[dict[str, Any]]:
    return [{"lr": 3e-3, "r": 8, "alpha": 16, "dropout": 0.0}]


# -- LayerNorm tuning -----------------------------------------------------------------------------


def layer_norms(module: nn.Module) -> list[str]:
    """LayerNorm modules that have parameters to tune."""
    from torch import nn

    return [name for name, sub in module.named_modules()
            if isinstance(sub, nn.LayerNorm) and any(True for _ in sub.parameters())]


def _norm_groups(backbone: Backbone) -> list[int]:
    """The layer groups holding a LayerNorm's parameters, ascending."""
    norms = set(layer_norms(backbone.module))
    return sorted({i for i, group in enumerate(backbone.layer_groups)
                   if any(_owner(name) in norms for name in group)})


def layernorm_inapplicable(backbone: Backbone) -> str | None:
    if not layer_norms(backbone.module):
        return (f"{backbone.name} has no LayerNorm layers (LayerNorm tuning trains those; "
                "BatchNorm CNNs have none)")
    return None


def suggest_layernorm(trial: optuna.Trial, backbone: Backbone) -> dict[str, Any]:
    last = _norm_groups(backbone)[-1]
    return {"freeze_depth": trial.suggest_int("peft:layernorm.freeze_depth", 0, last)}


def _tuned_norms(layer_groups: list[list[str]], module: nn.Module, depth: int) -> list[str]:
    """LayerNorms whose parameters sit in group ``depth`` or later."""
    later = {_owner(name) for group in layer_groups[depth:] for name in group}
    return [name for name in layer_norms(module) if name in later]


def apply_layernorm(model: TransferModel, params: Mapping[str, Any]) -> None:
    from peft import LNTuningConfig, inject_adapter_in_model

    norms = _tuned_norms(model.layer_groups, model.backbone, int(params["freeze_depth"]))
    with warnings.catch_warnings():  # PEFT asks every layer for in/out features; norms have none
        warnings.filterwarnings("ignore", "Unsupported layer type", UserWarning)
        inject_adapter_in_model(LNTuningConfig(target_modules=full_match(norms)),
                                model.backbone)
    _mark_trainable(model.backbone, "ln_tuning_layers")


def layernorm_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    norms = _tuned_norms(backbone.layer_groups, backbone.module, int(params["freeze_depth"]))
    return _first_group_with_modules(backbone, norms)


def layernorm_known_good(backbone: Backbone) -> list[dict[str, Any]]:
    return [{"lr": 3e-3, "freeze_depth": 0}]


@autotl.hookimpl
def autotl_register_strategies(registry: autotl.Registry[autotl.StrategySpec]) -> None:
    registry.add(autotl.StrategySpec(
        name="peft:ia3",
        apply=apply_ia3,
        frozen_depth=ia3_frozen_depth,
        suggest=suggest_ia3,
        lr_range=(3e-4, 5e-2),
        known_good=ia3_known_good,
        inapplicable=_no_targets,
        description="PEFT (IA)3: learned vectors rescale attention projections (or pointwise "
        "convs) and, if searched, feed-forward inputs; plus a new head",
    ))
    registry.add(autotl.StrategySpec(
        name="peft:dora",
        apply=apply_dora,
        frozen_depth=dora_frozen_depth,
        suggest=suggest_dora,
        lr_range=(1e-4, 5e-2),
        known_good=dora_known_good,
        inapplicable=_no_targets,
        description="PEFT DoRA: LoRA on the weight direction plus a trained magnitude, on the "
        "LoRA targets (r, alpha, dropout searched); plus a new head",
    ))
    registry.add(autotl.StrategySpec(
        name="peft:layernorm",
        apply=apply_layernorm,
        frozen_depth=layernorm_frozen_depth,
        suggest=suggest_layernorm,
        lr_range=(1e-4, 5e-2),
        known_good=layernorm_known_good,
        inapplicable=layernorm_inapplicable,
        description="PEFT LayerNorm tuning: train the LayerNorms from a searched layer group "
        "on; not for BatchNorm CNNs; plus a new head",
    ))
