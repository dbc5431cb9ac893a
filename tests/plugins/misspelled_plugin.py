"""A plugin that misspells a hook name."""

import autotl


@autotl.hookimpl
def autotl_register_strategy(registry):  # noqa: ANN001, ANN201
    raise AssertionError("never called")
