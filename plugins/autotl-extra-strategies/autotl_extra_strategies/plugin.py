"""BitFit as an autotl strategy: only bias terms (and the new head) train."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import autotl

if TYPE_CHECKING:  # pragma: no cover - keeps torch off the listing path
    from autotl.backbones import Backbone
    from autotl.models import TransferModel

AUTOTL_PLUGIN_API = ">=1.1,<2"


def apply_bitfit(model: TransferModel, params: Mapping[str, Any]) -> None:
    for name, param in model.backbone.named_parameters():
        param.requires_grad_(name.endswith(".bias"))


def bitfit_frozen_depth(params: Mapping[str, Any], backbone: Backbone) -> int:
    """Biases sit in every group, so the first group with a bias is the first that changes."""
    return backbone.first_group_with(lambda name: name.endswith(".bias"))


def bitfit_inapplicable(backbone: Backbone) -> str | None:
    if not any(name.endswith(".bias") for name, _ in backbone.module.named_parameters()):
        return f"{backbone.name} has no bias parameters"
    return None


@autotl.hookimpl
def autotl_register_strategies(registry: autotl.Registry[autotl.StrategySpec]) -> None:
    registry.add(autotl.StrategySpec(
        name="extra:bitfit",
        apply=apply_bitfit,
        frozen_depth=bitfit_frozen_depth,
        lr_range=(1e-4, 5e-2),
        known_good=lambda backbone: [{"lr": 5e-3}],
        inapplicable=bitfit_inapplicable,
        description="BitFit: train only the backbone's bias terms and the head",
    ))
