"""A third-party plugin that tries to take a bare (built-in style) name."""

import autotl


@autotl.hookimpl
def autotl_register_strategies(registry):  # noqa: ANN001, ANN201
    registry.add(autotl.StrategySpec(
        name="frozen", apply=lambda m, p: None, frozen_depth=lambda p, b: 0,
    ))
