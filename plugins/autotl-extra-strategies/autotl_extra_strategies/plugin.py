"""BitFit as an autotl strategy: only bias terms (and the new head) train."""

from __future__ import annotations

import autotl


def apply_bitfit(model, params):  # noqa: ANN001, ANN201, ARG001
    for name, param in model.backbone.named_parameters():
        param.requires_grad_(name.endswith(".bias"))


def bitfit_frozen_depth(params, backbone):  # noqa: ANN001, ANN201, ARG001
    """Biases sit in every group, so the first group with a bias is the first that changes."""
    return backbone.first_group_with(lambda name: name.endswith(".bias"))


@autotl.hookimpl
def autotl_register_strategies(registry):  # noqa: ANN001, ANN201
    registry.add(autotl.StrategySpec(
        name="extra:bitfit",
        apply=apply_bitfit,
        frozen_depth=bitfit_frozen_depth,
        lr_range=(1e-4, 5e-2),
        known_good=lambda backbone: [{"lr": 5e-3}],
        description="BitFit: train only the backbone's bias terms and the head",
    ))
