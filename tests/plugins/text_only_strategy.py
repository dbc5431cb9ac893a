"""A strategy that applies to text backbones only (for the applicability tests)."""

from __future__ import annotations

import autotl


def _text_only(backbone) -> str | None:  # noqa: ANN001
    return None if backbone.modality == "text" else "it adapts tokenizer embeddings only"


@autotl.hookimpl
def autotl_register_strategies(registry) -> None:  # noqa: ANN001
    registry.add(autotl.StrategySpec(
        name="test:text-only", apply=lambda model, params: model.freeze_backbone(),
        frozen_depth=lambda params, backbone: backbone.n_groups, inapplicable=_text_only))
