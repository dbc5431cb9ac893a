"""The ``timm:`` namespace through the backbone suite, on timm's tiny test architectures: a
CNN with a stage split (EfficientNet), a ViT with a fused qkv, and a ResNet."""

from __future__ import annotations

import pytest

from autotl.errors import UnknownComponentError
from autotl.plugins import load_plugins
from autotl.testing import BackboneConformance


class TestEfficientNet(BackboneConformance):
    backbone_name = "timm:test_efficientnet"


class TestVit(BackboneConformance):
    backbone_name = "timm:test_vit"


class TestResNet(BackboneConformance):
    backbone_name = "timm:test_resnet"


def test_unknown_architecture_suggests_close_names() -> None:
    with pytest.raises(UnknownComponentError, match="timm:test_efficientnet"):
        load_plugins(entry_points=False).backbones.get("timm:test_eficientnet")
