"""Where autotl keeps things between runs (converted weights, frozen-layer activations)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "AUTOTL_CACHE_DIR"


def cache_root() -> Path:
    """``$AUTOTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/autotl``, else ``~/.cache/autotl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "autotl"
