"""Plugin discovery: a fresh pluggy manager per call, built-ins first, then entry points.

Built-in plugins are registered through the same door as third-party ones (datasette's
``DEFAULT_PLUGINS``): each is a module with ``@hookimpl`` functions and a name that
``AUTOTL_DISABLE_PLUGINS`` can block. Third-party plugins come from the ``autotl`` entry-point
group. A plugin that fails to import, implements an unknown hook, takes defaulted parameters,
declares a plugin API range that excludes this autotl's, or raises in a registration hook is
reported by name and skipped, unless ``strict`` is set.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import os
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from autotl import hookspecs
from autotl.errors import PluginError
from autotl.registry import (
    PLURALS,
    BackboneSpec,
    DatasetSpec,
    HeadSpec,
    Registry,
    StrategySpec,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "autotl"
DISABLE_ENV = "AUTOTL_DISABLE_PLUGINS"
STRICT_ENV = "AUTOTL_STRICT_PLUGINS"

#: Built-in plugins: (name, module). Blockable by name like any other plugin.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("autotl.timm", "autotl.builtin.timm_backbones"),
    ("autotl.hf", "autotl.builtin.hf_backbones"),
    ("autotl.heads", "autotl.builtin.heads"),
    ("autotl.strategies", "autotl.builtin.strategies"),
    ("autotl.datasets", "autotl.builtin.datasets"),
    ("autotl.optuna", "autotl.builtin.optuna_defaults"),
)

_SPEC_TYPES: dict[str, type] = {
    "backbone": BackboneSpec,
    "head": HeadSpec,
    "strategy": StrategySpec,
    "dataset": DatasetSpec,
}


@dataclass
class PluginInfo:
    """A loaded plugin: where it came from and what it registered."""

    name: str
    version: str
    source: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)  # other hooks it implements
    api: str = ""  # the plugin API range it declares (AUTOTL_PLUGIN_API), "" if none


@dataclass
class PluginFailure:
    """A plugin that was skipped, and why."""

    name: str
    stage: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} skipped ({self.stage}): {self.error}"


def disabled_plugins() -> set[str]:
    """Plugin names listed in ``AUTOTL_DISABLE_PLUGINS`` (comma separated)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def api_problem(declared: object) -> str | None:
    """Why a plugin declaring ``AUTOTL_PLUGIN_API = declared`` cannot be loaded, or ``None``."""
    if declared is None:
        return None
    offered = hookspecs.PLUGIN_API_VERSION
    try:
        supported = SpecifierSet(str(declared))
    except InvalidSpecifier:
        return (f"{hookspecs.PLUGIN_API_ATTRIBUTE} = {declared!r} is not a version range; "
                f"write one like '>=1.1,<2' (this autotl offers plugin API {offered})")
    if supported.contains(offered, prereleases=True):
        return None
    return (f"it supports autotl plugin API {supported} but autotl {autotl_version()} offers "
            f"plugin API {offered}; install a release of the plugin made for plugin API "
            f"{offered.split('.')[0]}.x, or an autotl whose plugin API is in {supported}")


def autotl_version() -> str:
    try:
        return importlib.metadata.version("autotl")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


class Plugins:
    """One plugin manager and the registries it fills. Make a fresh one per call.

    Registries are filled on first access, by calling each plugin's registration hook on its
    own so a failure is pinned on that plugin alone.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.blocked: list[str] = []
        self.info: dict[str, PluginInfo] = {}

    # -- loading ---------------------------------------------------------------------------

    def _fail(self, name: str, stage: str, error: str) -> None:
        failure = PluginFailure(name, stage, error)
        if self.strict:
            raise PluginError(str(failure))
        log.warning("%s", failure)
        self.failures.append(failure)

    def _blocked(self, name: str) -> bool:
        if name not in disabled_plugins():
            return False
        self.pm.set_blocked(name)
        self.blocked.append(name)
        return True

    def register(self, name: str, plugin: object, *, version: str, source: str) -> bool:
        """Register ``plugin`` under ``name`` after validating its hook implementations."""
        if self._blocked(name):
            return False
        if self.pm.has_plugin(name) or name in self.info:
            self._fail(name, "register", f"another plugin is already called {name!r}")
            return False
        api = getattr(plugin, hookspecs.PLUGIN_API_ATTRIBUTE, None)
        problem = api_problem(api)
        if problem:
            self._fail(name, "api", problem)
            return False
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._fail(name, "register", str(exc))
            return False
        problem = self._validate(plugin)
        if problem:
            self.pm.unregister(plugin)
            self._fail(name, "register", problem)
            return False
        hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or []
            if caller.name not in hookspecs.REGISTRATION_HOOKS.values()
        )
        self.info[name] = PluginInfo(name=name, version=version, source=source, hooks=hooks,
                                     api=str(api or ""))
        return True

    def add(self, plugin: object, name: str | None = None, *,
            source: str = "passed in") -> bool:
        """Register ``plugin`` (a module, or an object with hook implementations) into this
        loaded manager; registries already filled are filled again on their next use."""
        added = self.register(name or _plugin_name(plugin), plugin, version="", source=source)
        for kind in ("backbones", "heads", "strategies", "datasets"):
            self.__dict__.pop(kind, None)  # the cached_property values
        return added

    def _validate(self, plugin: object) -> str | None:
        known = hookspecs.hook_names()
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                close = difflib.get_close_matches(caller.name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known hooks: {known}"
                return f"implements unknown hook {caller.name!r}{hint}"
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and impl.kwargnames:
                    return (
                        f"{caller.name} takes defaulted parameter(s) {list(impl.kwargnames)}; "
                        f"pluggy never passes defaulted parameters, so remove the defaults"
                    )
        return None

    def load_builtins(self) -> None:
        for name, module_name in BUILTIN_PLUGINS:
            if self._blocked(name):
                continue
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - reported like any broken plugin
                self._fail(name, "import", f"{type(exc).__name__}: {exc} (from {module_name})")
                continue
            self.register(name, module, version=autotl_version(), source="built-in")

    def load_entry_points(self) -> None:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=str):
            if self._blocked(ep.name):
                continue  # not even imported
            dist = getattr(ep, "dist", None)
            version = dist.version if dist else "?"
            source = f"entry point from {dist.name if dist else '?'} ({ep.value})"
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error means "skip this one"
                self._fail(ep.name, "import", f"{type(exc).__name__}: {exc} (from {ep.value})")
                continue
            self.register(ep.name, plugin, version=version, source=source)

    def check_pending(self) -> None:
        """Raise if any registered plugin implements a hook nobody specified."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc

    # -- calling hooks -------------------------------------------------------------------------

    def _call(self, impl: Any, hook_name: str, kwargs: dict[str, Any]) -> tuple[bool, Any]:
        """Call one hook implementation; a failure is pinned on its plugin."""
        if impl.plugin_name in {f.name for f in self.failures}:
            return False, None
        try:
            return True, impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:  # noqa: BLE001 - one bad plugin must not stop the rest
            registry = kwargs.get("registry")
            if isinstance(registry, Registry):
                registry.discard_provider(impl.plugin_name)
            self._fail(impl.plugin_name, hook_name, f"{type(exc).__name__}: {exc}")
            return False, None

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook_name`` in registration order (built-ins first),
        isolating failures; returns ``(plugin name, result)`` pairs of those that succeeded."""
        results = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            ok, result = self._call(impl, hook_name, kwargs)
            if ok:
                results.append((impl.plugin_name, result))
        return results

    def _fill(self, kind: str) -> Registry[Any]:
        registry: Registry[Any] = Registry(kind, _SPEC_TYPES[kind])
        hook_name = hookspecs.REGISTRATION_HOOKS[kind]
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            with registry.providing(impl.plugin_name):
                self._call(impl, hook_name, {"registry": registry})
        for name, info in self.info.items():
            provided = registry.provided_by(name)
            if provided:
                info.registered[kind] = provided
        return registry

    @cached_property
    def backbones(self) -> Registry[BackboneSpec]:
        return self._fill("backbone")

    @cached_property
    def heads(self) -> Registry[HeadSpec]:
        return self._fill("head")

    @cached_property
    def strategies(self) -> Registry[StrategySpec]:
        return self._fill("strategy")

    @cached_property
    def datasets(self) -> Registry[DatasetSpec]:
        return self._fill("dataset")

    def registry(self, kind: str) -> Registry[Any]:
        """The registry for ``kind`` ('backbone', 'head', 'strategy' or 'dataset')."""
        return getattr(self, PLURALS[kind])

    def fill_all(self) -> None:
        """Run every registration hook (``autotl plugins`` shows what each plugin added)."""
        for kind in hookspecs.REGISTRATION_HOOKS:
            self.registry(kind)


def load_plugins(
    *,
    strict: bool | None = None,
    entry_points: bool = True,
    extra: Iterable[object | tuple[str, object]] = (),
) -> Plugins:
    """A fresh :class:`Plugins`: built-ins, then ``autotl`` entry points, then ``extra``.

    ``extra`` takes plugin modules/objects (or ``(name, plugin)`` pairs) registered as if they
    were installed, which is how tests and notebooks add a plugin without packaging it.
    ``strict`` (default: ``AUTOTL_STRICT_PLUGINS``) raises instead of skipping broken plugins.
    """
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").lower() in {"1", "true", "yes"}
    plugins = Plugins(strict=strict)
    plugins.load_builtins()
    if entry_points:
        plugins.load_entry_points()
    for item in extra:
        name, plugin = item if isinstance(item, tuple) else (_plugin_name(item), item)
        plugins.register(name, plugin, version="", source="passed in")
    plugins.check_pending()
    return plugins


def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return getattr(plugin, "__name__", type(plugin).__name__)
