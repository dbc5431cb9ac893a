"""The built-in heads through the same suite third-party heads use."""

from __future__ import annotations

from autotl.testing import HeadConformance


class TestLinear(HeadConformance):
    head_name = "linear"


class TestMlp(HeadConformance):
    head_name = "mlp"
