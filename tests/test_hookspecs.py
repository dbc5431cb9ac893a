from __future__ import annotations

import inspect
from pathlib import Path

from autotl import hookspecs

DOCS = Path(__file__).parents[1] / "docs" / "architecture.md"


def test_every_hook_has_a_docstring_and_no_defaults() -> None:
    for name in hookspecs.hook_names():
        function = getattr(hookspecs, name)
        assert inspect.getdoc(function), f"{name} is undocumented"
        params = inspect.signature(function).parameters.values()
        assert all(p.default is inspect.Parameter.empty for p in params), name


def test_every_hook_is_described_in_the_docs() -> None:
    text = DOCS.read_text()
    missing = [name for name in hookspecs.hook_names() if name not in text]
    assert missing == []


def test_registration_hooks_exist() -> None:
    assert set(hookspecs.REGISTRATION_HOOKS.values()) <= set(hookspecs.hook_names())
