"""Offline pretrained backbones for autotl; the plugin itself is :mod:`.plugin`.

Importing this package is cheap: torch, timm and transformers load only when a backbone is built.
"""

from __future__ import annotations

__version__ = "0.1.0"
