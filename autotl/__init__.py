"""autotl: measure which fine-tuning strategy wins for your dataset size.

Importing this package is cheap (no torch): the search entry points load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autotl.config import SearchConfig
from autotl.errors import (
    AutoTLError,
    ConfigError,
    DataError,
    DuplicateNameError,
    PluginError,
    UnknownComponentError,
    WeightsError,
)
from autotl.hookspecs import hookimpl
from autotl.plugins import load_plugins
from autotl.registry import (
    BackboneSpec,
    DatasetSpec,
    HeadSpec,
    Namespace,
    Registry,
    StrategySpec,
)

if TYPE_CHECKING:  # pragma: no cover
    from autotl.prior import recommend
    from autotl.saved_model import load_model
    from autotl.study import search

__version__ = "0.1.0"

_LAZY = {"search": "autotl.study", "load_model": "autotl.saved_model",
         "recommend": "autotl.prior"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autotl' has no attribute {name!r}")


__all__ = [
    "AutoTLError",
    "BackboneSpec",
    "ConfigError",
    "DataError",
    "DatasetSpec",
    "DuplicateNameError",
    "HeadSpec",
    "Namespace",
    "PluginError",
    "Registry",
    "SearchConfig",
    "StrategySpec",
    "UnknownComponentError",
    "WeightsError",
    "__version__",
    "hookimpl",
    "load_model",
    "load_plugins",
    "recommend",
    "search",
]
