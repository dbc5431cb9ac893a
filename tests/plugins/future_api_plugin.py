"""A plugin written for a plugin API this autotl does not offer yet."""

from __future__ import annotations

import autotl

AUTOTL_PLUGIN_API = ">=2.0,<3"


@autotl.hookimpl
def autotl_register_heads(registry) -> None:  # noqa: ANN001
    from autotl.builtin.heads import build_linear

    registry.add(autotl.HeadSpec(name="future:linear", build=build_linear))
