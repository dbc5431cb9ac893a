"""Built-in plugin: the four fine-tuning strategies ``full``, ``subset``, ``head-only``, ``lora``.

Learning-rate ranges differ per strategy: a linear head on frozen features wants a much larger
rate than a whole-model fine-tune, and LoRA's low-rank updates want the largest. The known-good
configs tried first depend on the modality, because what was measured differs: on
Fashion-MNIST with EfficientNet-Lite0 whole-model and subset trials below 1e-4 trailed the
strategy's best by 0.50 to 0.65 accuracy, while on fortunes with MiniLM the best subset and full
configs sat at about 1e-4, the bottom of the range then searched, so the ranges reach down to
1e-5 for transformers' sake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autotl import hookimpl
from autotl.registry import StrategySpec

if TYPE_CHECKING:  # pragma: no cover - keeps torch off the listing path
    import optuna

    from autotl.backbones import Backbone
    from autotl.models import TransferModel
    from autotl.registry import Registry

LORA_RANKS = (4, 8, 16, 32)
LORA_ALPHAS = (8, 16, 32, 64)


# -- full --------------------------------------------------------------------------------------


def apply_full(model: TransferModel, params: Mapping[str, Any]) -> None:
    """Everything trains."""


def no_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    return 0


def full_known_good(backbone: Backbone) -> list[dict[str, Any]]:
    return [{"lr": 1e-3 if backbone.modality == "image" else 1e-4}]


# -- subset ------------------------------------------------------------------------------------


def suggest_subset(trial: optuna.Trial, backbone: Backbone) -> dict[str, Any]:
    return {"freeze_depth": trial.suggest_int("subset.freeze_depth", 1, backbone.n_groups - 1)}


def apply_subset(model: TransferModel, params: Mapping[str, Any]) -> None:
    model.freeze_groups(int(params["freeze_depth"]))


def subset_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    return int(params["freeze_depth"])


def subset_known_good(backbone: Backbone) -> list[dict[str, Any]]:
    lr = 2e-3 if backbone.modality == "image" else 1e-4
    return [{"lr": lr, "freeze_depth": max(1, backbone.n_groups // 2)}]


def subset_inapplicable(backbone: Backbone) -> str | None:
    if backbone.n_groups < 2:
        return (f"{backbone.name} has {backbone.n_groups} layer group; freezing a strict "
                "prefix needs at least 2")
    return None


# -- head-only ---------------------------------------------------------------------------------


def apply_head_only(model: TransferModel, params: Mapping[str, Any]) -> None:
    model.freeze_backbone()


def all_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    return backbone.n_groups


def head_only_known_good(backbone: Backbone) -> list[dict[str, Any]]:
    return [{"lr": 3e-3}]


# -- lora --------------------------------------------------------------------------------------


def suggest_lora(trial: optuna.Trial, backbone: Backbone) -> dict[str, Any]:
    return {
        "r": trial.suggest_categorical("lora.r", list(LORA_RANKS)),
        "alpha": trial.suggest_categorical("lora.alpha", list(LORA_ALPHAS)),
        "dropout": trial.suggest_float("lora.dropout", 0.0, 0.2),
    }


def apply_lora(model: TransferModel, params: Mapping[str, Any]) -> None:
    """Wrap the backbone's LoRA targets with PEFT adapters; only adapters (and the head) train."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=int(params["r"]),
        lora_alpha=int(params["alpha"]),
        lora_dropout=float(params.get("dropout", 0.0)),
        target_modules=list(model.lora_targets),
    )
    inject_adapter_in_model(config, model.backbone)
    for name, param in model.backbone.named_parameters():
        param.requires_grad_("lora_" in name)


def lora_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    """Groups before the first adapted module compute exactly what they did pretrained."""
    targets = set(backbone.lora_targets)
    return backbone.first_group_with(lambda name: name.rsplit(".", 1)[0] in targets)


def lora_known_good(backbone: Backbone) -> list[dict[str, Any]]:
    return [{"lr": 3e-3, "r": 8, "alpha": 16, "dropout": 0.0}]


def lora_inapplicable(backbone: Backbone) -> str | None:
    if not backbone.lora_targets:
        return f"{backbone.name} names no LoRA target modules (its lora_targets is empty)"
    return None


@hookimpl
def autotl_register_strategies(registry: Registry[StrategySpec]) -> None:
    registry.add(StrategySpec(
        name="full",
        apply=apply_full,
        frozen_depth=no_frozen_depth,
        lr_range=(1e-5, 1e-2),
        known_good=full_known_good,
        description="fine-tune the whole backbone and a new head",
    ))
    registry.add(StrategySpec(
        name="subset",
        apply=apply_subset,
        frozen_depth=subset_frozen_depth,
        suggest=suggest_subset,
        lr_range=(1e-5, 1e-2),
        known_good=subset_known_good,
        inapplicable=subset_inapplicable,
        description="freeze the first k layer groups (k searched), fine-tune the rest",
    ))
    registry.add(StrategySpec(
        name="head-only",
        apply=apply_head_only,
        frozen_depth=all_frozen_depth,
        lr_range=(3e-4, 1e-1),
        known_good=head_only_known_good,
        description="freeze the backbone (kept in eval mode); train only the new head",
    ))
    registry.add(StrategySpec(
        name="lora",
        apply=apply_lora,
        frozen_depth=lora_frozen_depth,
        suggest=suggest_lora,
        lr_range=(1e-4, 5e-2),
        known_good=lora_known_good,
        inapplicable=lora_inapplicable,
        description="PEFT LoRA adapters on attention projections or pointwise convs (r, alpha, "
        "dropout searched) plus a new head",
    ))
