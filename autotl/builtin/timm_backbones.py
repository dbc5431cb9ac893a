"""Built-in plugin: every timm architecture as ``timm:<arch>``, resolved on demand."""

from __future__ import annotations

import difflib
import functools
from typing import TYPE_CHECKING

from autotl import hookimpl
from autotl.errors import UnknownComponentError
from autotl.registry import BackboneSpec, Namespace

if TYPE_CHECKING:  # pragma: no cover - keeps torch off the listing path
    from autotl.backbones import Backbone
    from autotl.registry import Registry


def _build(arch: str, pretrained: bool = True) -> Backbone:
    from autotl.backbones import timm_backbone

    return timm_backbone(arch, pretrained)


def resolve(name: str) -> BackboneSpec:
    """``timm:<arch>`` → spec; imports timm, so only when a name is actually used."""
    import timm

    arch = name.partition(":")[2]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.7)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        msg = (
            f"unknown backbone {name!r}: timm has no architecture {arch!r}.{hint} "
            "`python -c \"import timm; print(timm.list_models('*resnet*'))\"` lists them."
        )
        raise UnknownComponentError(msg)
    return BackboneSpec(
        name=name,
        modality="image",
        build=functools.partial(_build, arch),
        description=f"timm architecture {arch} (weights from the Hugging Face hub)",
    )


@hookimpl
def autotl_register_backbones(registry: Registry[BackboneSpec]) -> None:
    registry.add_namespace(Namespace(
        prefix="timm",
        resolve=resolve,
        description="any timm architecture, e.g. timm:resnet50 or timm:vit_small_patch16_224; "
        "pretrained weights download from the hub",
    ))
