"""A well-behaved third-party plugin: one strategy, one head."""

import autotl


def _noop(model, params):  # noqa: ANN001, ANN202, ARG001
    model.freeze_backbone()


@autotl.hookimpl
def autotl_register_strategies(registry):  # noqa: ANN001, ANN201
    registry.add(autotl.StrategySpec(
        name="good:frozen", apply=_noop, frozen_depth=lambda params, backbone: backbone.n_groups,
        description="test strategy",
    ))


@autotl.hookimpl
def autotl_register_heads(registry):  # noqa: ANN001, ANN201
    from autotl.builtin.heads import build_linear

    registry.add(autotl.HeadSpec(name="good:linear", build=build_linear))
