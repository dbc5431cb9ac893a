"""The model a trial trains: a backbone, a new head, and what of it is frozen."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from autotl.backbones import Backbone


class TransferModel(nn.Module):
    """``head(backbone(x))`` with freezing helpers that strategies call.

    Modules whose parameters are all frozen stay in eval mode even while the model trains:
    frozen BatchNorm keeps its pretrained statistics and frozen dropout is off, so a frozen
    prefix computes exactly what it computed before (which the activation cache relies on).
    """

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone.module
        self.head = head
        self.layer_groups = [list(group) for group in backbone.layer_groups]
        self.lora_targets = list(backbone.lora_targets)
        self.frozen_depth = 0

    def forward(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.features(inputs))

    def features(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(inputs, Mapping):
            return self.backbone(**inputs)
        return self.backbone(inputs)

    # -- freezing ------------------------------------------------------------------------------

    def freeze_groups(self, depth: int) -> None:
        """Freeze the first ``depth`` layer groups of the backbone (0 freezes nothing)."""
        if not 0 <= depth <= len(self.layer_groups):
            msg = (
                f"freeze depth must be between 0 and {len(self.layer_groups)} (the backbone's "
                f"layer groups), but got {depth}."
            )
            raise ValueError(msg)
        params = dict(self.backbone.named_parameters())
        for group in self.layer_groups[:depth]:
            for name in group:
                params[name].requires_grad_(False)
        self.frozen_depth = depth

    def freeze_backbone(self) -> None:
        for param in self.backbone.parameters():
            param.requires_grad_(False)
        self.frozen_depth = len(self.layer_groups)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.eval()
        return self

    def frozen_modules(self) -> Iterator[nn.Module]:
        """The largest backbone submodules whose parameters are all frozen."""
        yield from _frozen_subtrees(self.backbone)

    # -- accounting ----------------------------------------------------------------------------

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def count_parameters(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return {"total": total, "trainable": trainable}


def _frozen_subtrees(module: nn.Module) -> Iterator[nn.Module]:
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        yield module
        return
    for child in module.children():
        yield from _frozen_subtrees(child)

