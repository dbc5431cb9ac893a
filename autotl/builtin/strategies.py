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

from autotl import hookimpl
from autotl.registry import StrategySpec

LORA_RANKS = (4, 8, 16, 32)
LORA_ALPHAS = (8, 16, 32, 64)


# -- full --------------------------------------------------------------------------------------


def apply_full(model, params):  # noqa: ANN001, ANN201, ARG001
    """Everything trains."""


def no_frozen_depth(params, backbone):  # noqa: ANN001, ANN201, ARG001
    return 0


# -- subset ------------------------------------------------------------------------------------


def suggest_subset(trial, backbone):  # noqa: ANN001, ANN201
    return {"freeze_depth": trial.suggest_int("subset.freeze_depth", 1, backbone.n_groups - 1)}


def apply_subset(model, params):  # noqa: ANN001, ANN201
    model.freeze_groups(int(params["freeze_depth"]))


def subset_frozen_depth(params, backbone):  # noqa: ANN001, ANN201, ARG001
    return int(params["freeze_depth"])


def subset_known_good(backbone):  # noqa: ANN001, ANN201
    lr = 2e-3 if backbone.modality == "image" else 1e-4
    return [{"lr": lr, "freeze_depth": max(1, backbone.n_groups // 2)}]


def full_known_good(backbone):  # noqa: ANN001, ANN201
    return [{"lr": 1e-3 if backbone.modality == "image" else 1e-4}]


# -- head-only ---------------------------------------------------------------------------------


def apply_head_only(model, params):  # noqa: ANN001, ANN201, ARG001
    model.freeze_backbone()


def all_frozen_depth(params, backbone):  # noqa: ANN001, ANN201, ARG001
    return backbone.n_groups


# -- lora --------------------------------------------------------------------------------------


def suggest_lora(trial, backbone):  # noqa: ANN001, ANN201, ARG001
    return {
        "r": trial.suggest_categorical("lora.r", list(LORA_RANKS)),
        "alpha": trial.suggest_categorical("lora.alpha", list(LORA_ALPHAS)),
        "dropout": trial.suggest_float("lora.dropout", 0.0, 0.2),
    }


def apply_lora(model, params):  # noqa: ANN001, ANN201
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


def lora_frozen_depth(params, backbone):  # noqa: ANN001, ANN201, ARG001
    """Groups before the first adapted module compute exactly what they did pretrained."""
    targets = set(backbone.lora_targets)
    return backbone.first_group_with(lambda name: name.rsplit(".", 1)[0] in targets)


@hookimpl
def autotl_register_strategies(registry):  # noqa: ANN001, ANN201
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
        description="freeze the first k layer groups (k searched), fine-tune the rest",
    ))
    registry.add(StrategySpec(
        name="head-only",
        apply=apply_head_only,
        frozen_depth=all_frozen_depth,
        lr_range=(3e-4, 1e-1),
        known_good=lambda backbone: [{"lr": 3e-3}],
        description="freeze the backbone (kept in eval mode); train only the new head",
    ))
    registry.add(StrategySpec(
        name="lora",
        apply=apply_lora,
        frozen_depth=lora_frozen_depth,
        suggest=suggest_lora,
        lr_range=(1e-4, 5e-2),
        known_good=lambda backbone: [{"lr": 3e-3, "r": 8, "alpha": 16, "dropout": 0.0}],
        description="PEFT LoRA adapters on attention projections or pointwise convs (r, alpha, "
        "dropout searched) plus a new head",
    ))
