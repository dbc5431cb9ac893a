"""A plugin that registers a name good_plugin already took."""

import autotl


@autotl.hookimpl
def autotl_register_strategies(registry):  # noqa: ANN001, ANN201
    registry.add(autotl.StrategySpec(
        name="good:frozen", apply=lambda m, p: None, frozen_depth=lambda p, b: 0,
    ))
