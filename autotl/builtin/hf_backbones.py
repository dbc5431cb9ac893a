"""Built-in plugin: any transformers text encoder as ``hf:<model id or local path>``."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from autotl import hookimpl
from autotl.registry import BackboneSpec, Namespace

if TYPE_CHECKING:  # pragma: no cover - keeps torch off the listing path
    from autotl.backbones import Backbone
    from autotl.registry import Registry


def _build(model_id: str, pretrained: bool = True) -> Backbone:
    from autotl.backbones import hf_backbone

    return hf_backbone(model_id, pretrained)


def resolve(name: str) -> BackboneSpec:
    model_id = name.partition(":")[2]
    return BackboneSpec(
        name=name,
        modality="text",
        build=functools.partial(_build, model_id),
        description=f"transformers encoder {model_id}, mean-pooled",
    )


@hookimpl
def autotl_register_backbones(registry: Registry[BackboneSpec]) -> None:
    registry.add_namespace(Namespace(
        prefix="hf",
        resolve=resolve,
        description="any transformers encoder by hub id or local folder, e.g. "
        "hf:bert-base-uncased or hf:/models/my-bert; text, mean-pooled",
    ))
