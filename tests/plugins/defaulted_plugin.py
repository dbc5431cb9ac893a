"""A hook implementation with a defaulted parameter, which pluggy would never pass."""

import autotl


@autotl.hookimpl
def autotl_register_heads(registry=None):  # noqa: ANN001, ANN201
    raise AssertionError("never called")
