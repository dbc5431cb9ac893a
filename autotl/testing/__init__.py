"""Helpers and reusable test suites for plugin authors (like ``optuna.testing``).

Tiny random backbones build in milliseconds and need no files, so a plugin's tests run anywhere::

    from autotl.testing import StrategyConformance

    class TestBitFit(StrategyConformance):
        strategy_name = "extra:bitfit"

The suite builds every tiny backbone, applies the strategy and checks its contract: the head
trains, what it declares frozen stays exactly unchanged after optimizer steps, and frozen
modules stay in eval mode.
"""

from __future__ import annotations

from autotl.testing.backbones import tiny_bert, tiny_cnn, tiny_vit
from autotl.testing.suites import StrategyConformance, snapshot, train_steps

__all__ = ["StrategyConformance", "snapshot", "tiny_bert", "tiny_cnn", "tiny_vit", "train_steps"]
