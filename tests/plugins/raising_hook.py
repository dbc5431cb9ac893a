"""A plugin that registers one strategy, then raises half-way through its hook."""

import autotl


@autotl.hookimpl
def autotl_register_strategies(registry):  # noqa: ANN001, ANN201
    registry.add(autotl.StrategySpec(
        name="raising:first", apply=lambda m, p: None, frozen_depth=lambda p, b: 0,
    ))
    raise RuntimeError("boom while registering")
