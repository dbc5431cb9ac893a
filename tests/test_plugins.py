from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import autotl
from autotl.errors import PluginError
from autotl.hookspecs import PLUGIN_API_VERSION, REGISTRATION_HOOKS
from autotl.plugins import BUILTIN_PLUGINS, autotl_version, load_plugins


def _failure(plugins, name):  # noqa: ANN001, ANN202
    return next(f for f in plugins.failures if f.name == name)


def test_builtins_register_the_four_strategies_and_two_heads() -> None:
    plugins = load_plugins(entry_points=False)
    assert {"full", "subset", "head-only", "lora"} <= set(plugins.strategies.names())
    assert plugins.heads.names() == ["linear", "mlp"]
    assert [ns.prefix for ns in plugins.backbones.namespaces] == ["hf", "timm"]
    assert plugins.failures == []
    assert [n for n, _ in BUILTIN_PLUGINS] == list(plugins.info)[: len(BUILTIN_PLUGINS)]


def test_each_call_gets_a_fresh_manager() -> None:
    import good_plugin

    with_extra = load_plugins(entry_points=False, extra=[good_plugin])
    without = load_plugins(entry_points=False)
    assert with_extra.pm is not without.pm
    assert "good:frozen" in with_extra.strategies.names()
    assert "good:frozen" not in without.strategies.names()


def test_extra_plugin_is_recorded_with_what_it_registered() -> None:
    import good_plugin

    plugins = load_plugins(entry_points=False, extra=[good_plugin])
    plugins.fill_all()
    assert plugins.info["good_plugin"].registered == {
        "strategy": ["good:frozen"], "head": ["good:linear"],
    }


def test_disable_env_blocks_builtins_and_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTL_DISABLE_PLUGINS", "autotl.heads, extra-strategies")
    plugins = load_plugins()
    assert plugins.heads.names() == []
    assert "extra:bitfit" not in plugins.strategies.names()
    assert {"autotl.heads", "extra-strategies"} <= set(plugins.blocked)
    assert plugins.pm.is_blocked("autotl.heads")


def test_hook_that_raises_is_isolated_and_its_additions_withdrawn() -> None:
    import good_plugin
    import raising_hook

    plugins = load_plugins(entry_points=False, extra=[raising_hook, good_plugin])
    names = plugins.strategies.names()
    assert "raising:first" not in names
    assert "good:frozen" in names and "full" in names
    failure = _failure(plugins, "raising_hook")
    assert failure.stage == "autotl_register_strategies"
    assert "boom while registering" in failure.error


def test_strict_mode_raises_naming_the_plugin() -> None:
    import raising_hook

    plugins = load_plugins(entry_points=False, extra=[raising_hook], strict=True)
    with pytest.raises(PluginError, match="raising_hook.*boom"):
        plugins.strategies  # noqa: B018


def test_strict_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import misspelled_plugin

    monkeypatch.setenv("AUTOTL_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="misspelled_plugin"):
        load_plugins(entry_points=False, extra=[misspelled_plugin])


def test_duplicate_across_plugins_names_both() -> None:
    import duplicate_plugin
    import good_plugin

    plugins = load_plugins(entry_points=False, extra=[good_plugin, duplicate_plugin])
    assert plugins.strategies.get("good:frozen").provider == "good_plugin"
    failure = _failure(plugins, "duplicate_plugin")
    assert "good_plugin" in failure.error and "duplicate_plugin" in failure.error


def test_hookimpl_with_defaulted_parameter_is_rejected() -> None:
    import defaulted_plugin

    plugins = load_plugins(entry_points=False, extra=[defaulted_plugin])
    failure = _failure(plugins, "defaulted_plugin")
    assert "defaulted parameter" in failure.error and "registry" in failure.error
    assert not plugins.pm.is_registered(defaulted_plugin)
    assert plugins.heads.names() == ["linear", "mlp"]


def test_misspelled_hook_is_caught_with_suggestion() -> None:
    import misspelled_plugin

    plugins = load_plugins(entry_points=False, extra=[misspelled_plugin])
    failure = _failure(plugins, "misspelled_plugin")
    assert "autotl_register_strategy" in failure.error
    assert "did you mean 'autotl_register_strategies'" in failure.error
    plugins.check_pending()  # the bad plugin was unregistered, so nothing is pending


def test_third_party_bare_name_is_refused() -> None:
    import bare_name_plugin

    plugins = load_plugins(entry_points=False, extra=[bare_name_plugin])
    assert "frozen" not in plugins.strategies.names()
    assert "namespace" in _failure(plugins, "bare_name_plugin").error


def _fake_distribution(root: Path, name: str, entry_points: dict[str, str]) -> None:
    """What pip leaves behind: a dist-info folder with METADATA and entry_points.txt."""
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[autotl]\n{lines}\n")


def test_broken_entry_point_is_named_and_skipped(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "autotl-broken", {"broken": "broken_import"})
    _fake_distribution(tmp_path, "autotl-good", {"good": "good_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = load_plugins()
    failure = _failure(plugins, "broken")
    assert failure.stage == "import"
    assert "autotl_this_module_does_not_exist" in failure.error
    assert plugins.info["good"].version == "1.2.3"
    assert "autotl-good" in plugins.info["good"].source
    assert "good:frozen" in plugins.strategies.names()
    assert "full" in plugins.strategies.names()


def test_installed_distribution_adds_a_strategy_through_its_entry_point() -> None:
    """plugins/autotl-extra-strategies is installed by `make setup`, like any third party."""
    plugins = load_plugins()
    info = plugins.info["extra-strategies"]
    assert "entry point from autotl-extra-strategies" in info.source
    assert plugins.strategies.get("extra:bitfit").provider == "extra-strategies"


def test_every_builtin_hookimpl_has_no_defaulted_parameters() -> None:
    plugins = load_plugins()
    for caller_name in REGISTRATION_HOOKS.values():
        for impl in getattr(plugins.pm.hook, caller_name).get_hookimpls():
            assert not impl.kwargnames, (impl.plugin_name, caller_name)


def test_listing_does_not_import_torch() -> None:
    code = textwrap.dedent("""
        import sys
        from autotl.plugins import load_plugins
        plugins = load_plugins()
        plugins.fill_all()
        heavy = sorted(m for m in ("torch", "timm", "transformers", "peft", "optuna", "datasets")
                       if m in sys.modules)
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_autotl_testing_is_reachable_without_import_autotl_loading_torch_or_pytest() -> None:
    code = textwrap.dedent("""
        import sys
        import autotl
        before = sorted(m for m in ("torch", "pytest") if m in sys.modules)
        suite = autotl.testing.StrategyConformance
        print(before, suite.__name__, "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[] StrategyConformance True"


def test_public_api_all_is_sorted_and_resolvable() -> None:
    assert autotl.__all__ == sorted(autotl.__all__)
    for name in autotl.__all__:
        if name not in ("search", "recommend"):
            assert getattr(autotl, name) is not None


# -- plugin API versions --------------------------------------------------------------------------


def test_a_plugin_made_for_another_plugin_api_is_skipped_naming_both_versions() -> None:
    import future_api_plugin

    plugins = load_plugins(entry_points=False, extra=[future_api_plugin])
    failure = _failure(plugins, "future_api_plugin")
    assert failure.stage == "api"
    assert "supports autotl plugin API <3,>=2.0 but autotl" in failure.error
    assert f"offers plugin API {PLUGIN_API_VERSION}" in failure.error
    assert "future:linear" not in plugins.heads.names()
    assert "future_api_plugin" not in plugins.info


def test_a_plugin_api_range_that_is_not_a_range_is_reported() -> None:
    plugin = types.SimpleNamespace(AUTOTL_PLUGIN_API="version one")
    plugins = load_plugins(entry_points=False, extra=[("vague", plugin)])
    assert "AUTOTL_PLUGIN_API = 'version one' is not a version range" in \
        _failure(plugins, "vague").error


def test_a_compatible_declared_range_is_recorded() -> None:
    plugins = load_plugins()
    assert plugins.info["extra-strategies"].api == ">=1.1,<2"
    assert plugins.info["autotl.strategies"].api == ""


def test_autotl_plugins_flags_an_installed_plugin_outside_the_api(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from autotl.cli import main

    _fake_distribution(tmp_path, "autotl-future", {"future": "future_api_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"autotl {autotl_version()}, plugin API {PLUGIN_API_VERSION}")
    assert "extra-strategies" in out and "(plugin API >=1.1,<2)" in out
    skipped = out.split("skipped (broken, or made for another plugin API):")[1]
    assert "future: api: it supports autotl plugin API <3,>=2.0" in skipped
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plugin_api"] == PLUGIN_API_VERSION
    assert {"name": "future", "stage": "api"}.items() <= next(
        s for s in data["skipped"] if s["name"] == "future").items()
