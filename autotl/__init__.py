"""autotl: measure which fine-tuning strategy wins for your dataset size.

Importing this package is cheap (no torch, no pytest): the search entry points and the
``autotl.testing`` suites load on first use.
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
from autotl.hookspecs import PLUGIN_API_VERSION, hookimpl
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
    from autotl import testing
    from autotl.prior import recommend
    from autotl.saved_model import load_model
    from autotl.study import search

__version__ = "0.1.0"

_LAZY = {"search": "autotl.study", "load_model": "autotl.saved_model",
         "recommend": "autotl.prior"}


_LAZY_MODULES = {"testing"}  # imports torch and pytest: only for those who ask


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"autotl.{name}")
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
    "PLUGIN_API_VERSION",
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
    "testing",
]
