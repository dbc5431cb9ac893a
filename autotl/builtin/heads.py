"""Built-in plugin: the ``linear`` and ``mlp`` classifier heads."""

from __future__ import annotations

from autotl import hookimpl
from autotl.registry import HeadSpec

MLP_HIDDEN = (128, 256, 512)


def build_linear(feature_dim, num_classes, params):  # noqa: ANN001, ANN201, ARG001
    from torch import nn

    return nn.Linear(feature_dim, num_classes)


def build_mlp(feature_dim, num_classes, params):  # noqa: ANN001, ANN201
    from torch import nn

    hidden = int(params.get("hidden", 256))
    return nn.Sequential(
        nn.Linear(feature_dim, hidden),
        nn.GELU(),
        nn.Dropout(float(params.get("dropout", 0.1))),
        nn.Linear(hidden, num_classes),
    )


def suggest_mlp(trial):  # noqa: ANN001, ANN201
    return {
        "hidden": trial.suggest_categorical("mlp.hidden", list(MLP_HIDDEN)),
        "dropout": trial.suggest_float("mlp.dropout", 0.0, 0.5),
    }


@hookimpl
def autotl_register_heads(registry):  # noqa: ANN001, ANN201
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
