"""A plugin that imports torch at module level, which the suites' listing check rejects."""

from __future__ import annotations

import torch  # noqa: F401 - the mistake under test

import autotl


@autotl.hookimpl
def autotl_register_heads(registry) -> None:  # noqa: ANN001
    from autotl.builtin.heads import build_linear

    registry.add(autotl.HeadSpec(name="heavy:linear", build=build_linear))
