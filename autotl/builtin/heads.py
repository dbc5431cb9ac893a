"""Built-in plugin: the ``linear`` and ``mlp`` classifier heads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autotl import hookimpl
from autotl.registry import HeadSpec

if TYPE_CHECKING:  # pragma: no cover - keeps torch off the listing path
    import optuna
    from torch import nn

    from autotl.registry import Registry

MLP_HIDDEN = (128, 256, 512)


def build_linear(feature_dim: int, num_classes: int, params: Mapping[str, Any]) -> nn.Module:
    from torch import nn

    return nn.Linear(feature_dim, num_classes)


def build_mlp(feature_dim: int, num_classes: int, params: Mapping[str, Any]) -> nn.Module:
    from torch import nn

    hidden = int(params.get("hidden", 256))
    return nn.Sequential(
        nn.Linear(feature_dim, hidden),
        nn.GELU(),
        nn.Dropout(float(params.get("dropout", 0.1))),
        nn.Linear(hidden, num_classes),
    )


def suggest_mlp(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "hidden": trial.suggest_categorical("mlp.hidden", list(MLP_HIDDEN)),
        "dropout": trial.suggest_float("mlp.dropout", 0.0, 0.5),
    }


@hookimpl
def autotl_register_heads(registry: Registry[HeadSpec]) -> None:
    registry.add(HeadSpec(
        name="linear",
        build=build_linear,
        description="one linear layer on the pooled features",
    ))
    registry.add(HeadSpec(
        name="mlp",
        build=build_mlp,
        suggest=suggest_mlp,
        default_params={"hidden": 256, "dropout": 0.1},
        description="linear → GELU → dropout → linear; hidden size and dropout searched",
    ))
