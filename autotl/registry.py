"""Component specs and the typed registries plugins fill.

A spec is a frozen dataclass that says what a component is and holds factories that build it;
nothing here imports torch, so listing components stays cheap. Names are ``<namespace>:<id>``
(``timm:resnet50``, ``offline:minilm-l6``); bare names (``full``, ``linear``) are reserved for
autotl's built-in plugins. A plugin may also claim a whole namespace with a resolver, which is
how ``timm:<any architecture>`` works without a fixed list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from autotl.errors import DuplicateNameError, UnknownComponentError

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps torch off the discovery path
    import datasets
    import optuna
    from torch import nn

    from autotl.backbones import Backbone
    from autotl.models import TransferModel

MODALITIES = ("image", "text")
BUILTIN_PREFIX = "autotl."
# After a namespace the id may be a path (``hf:/models/my-bert``, ``hf:./my-bert``).
_NAME = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]*:[A-Za-z0-9./]|[A-Za-z0-9])[A-Za-z0-9_.+/-]*$")
_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _no_params(*_args: Any) -> dict[str, Any]:
    return {}


def _applies_everywhere(_backbone: Any) -> str | None:
    return None


def _check_name(name: object, kind: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        msg = (
            f"{kind} name must look like 'namespace:id' (letters, digits, '.', '_', '-', '/'), "
            f"but got {name!r}."
        )
        raise ValueError(msg)


def _check_modality(name: str, modality: str) -> None:
    if modality not in MODALITIES:
        msg = f"{name}: modality must be one of {MODALITIES}, but got {modality!r}."
        raise ValueError(msg)


def _check_callable(name: str, **factories: object) -> None:
    for attr, value in factories.items():
        if not callable(value):
            msg = f"{name}: {attr} must be callable, but got {value!r}."
            raise TypeError(msg)


@dataclass(frozen=True)
class BackboneSpec:
    """A pretrained feature extractor.

    ``build(pretrained)`` returns an :class:`autotl.backbones.Backbone`: the module that maps
    inputs to pooled features, its feature dim, its ordered layer groups, its LoRA targets and
    the preprocessing it expects.
    """

    name: str
    modality: str
    build: Callable[[bool], Backbone]
    description: str = ""
    provider: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "backbone")
        _check_modality(self.name, self.modality)
        _check_callable(self.name, build=self.build)


@dataclass(frozen=True)
class HeadSpec:
    """A classifier put on top of the backbone's pooled features.

    ``build(feature_dim, num_classes, params)`` returns an ``nn.Module``; ``suggest(trial)``
    draws the head's own search parameters (named ``<head>.<param>``) and returns them without
    the prefix; ``default_params`` is what a known-good first trial uses.
    """

    name: str
    build: Callable[[int, int, Mapping[str, Any]], nn.Module]
    suggest: Callable[[optuna.Trial], dict[str, Any]] = _no_params
    default_params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    provider: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "head")
        _check_callable(self.name, build=self.build, suggest=self.suggest)


@dataclass(frozen=True)
class StrategySpec:
    """How much of the backbone trains.

    - ``apply(model, params)`` sets ``requires_grad`` on the :class:`TransferModel` (or wraps
      its backbone, as LoRA does); the head always trains.
    - ``frozen_depth(params, backbone)`` is how many leading layer groups stay frozen and
      unchanged, which is what the activation cache may compute once and reuse.
    - ``suggest(trial, backbone)`` draws the strategy's own conditional parameters (named
      ``<strategy>.<param>``) and returns them without the prefix.
    - ``lr_range`` bounds the log-uniform learning rate searched for this strategy.
    - ``known_good(backbone)`` lists configs (including ``lr``) enqueued before the sampler
      takes over, so every strategy is measured at least once.
    - ``inapplicable(backbone)`` says why the strategy cannot run on ``backbone`` (no modules
      it adapts, a modality it does not support), or returns ``None`` when it can. The search
      asks once the backbone is built: a strategy the user named is then an error, one taken
      from "every registered strategy" is left out with that reason.
    """

    name: str
    apply: Callable[[TransferModel, Mapping[str, Any]], None]
    frozen_depth: Callable[[Mapping[str, Any], Backbone], int]
    suggest: Callable[[optuna.Trial, Backbone], dict[str, Any]] = _no_params
    lr_range: tuple[float, float] = (1e-5, 1e-2)
    known_good: Callable[[Backbone], list[dict[str, Any]]] = lambda _backbone: [{"lr": 1e-3}]
    inapplicable: Callable[[Backbone], str | None] = _applies_everywhere
    description: str = ""
    provider: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "strategy")
        _check_callable(
            self.name,
            apply=self.apply,
            frozen_depth=self.frozen_depth,
            suggest=self.suggest,
            known_good=self.known_good,
            inapplicable=self.inapplicable,
        )
        low, high = self.lr_range
        if not 0 < low < high:
            msg = f"{self.name}: lr_range must satisfy 0 < low < high, but got {self.lr_range!r}."
            raise ValueError(msg)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset; ``load()`` returns a ``datasets.DatasetDict`` whose ``train`` split (and
    optional ``test`` split, and optional ``validation`` split, used as given) holds an
    ``image`` or ``text`` column and a ``ClassLabel`` ``label``.
    """

    name: str
    modality: str
    load: Callable[[], datasets.DatasetDict]
    description: str = ""
    provider: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "dataset")
        _check_modality(self.name, self.modality)
        _check_callable(self.name, load=self.load)


@dataclass(frozen=True)
class Namespace:
    """An open namespace: every ``<prefix>:<id>`` is resolved by ``resolve(full_name)``.

    ``description`` tells users how names are formed (shown by ``autotl list``).
    """

    prefix: str
    resolve: Callable[[str], Any]
    description: str
    provider: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _NAMESPACE.match(self.prefix):
            msg = f"namespace prefix must be lower-case letters/digits, but got {self.prefix!r}."
            raise ValueError(msg)
        _check_callable(self.prefix, resolve=self.resolve)


S = TypeVar("S", BackboneSpec, HeadSpec, StrategySpec, DatasetSpec)

# The plural is also the ``autotl list`` argument, so error messages can suggest the command.
PLURALS = {"backbone": "backbones", "head": "heads", "strategy": "strategies",
           "dataset": "datasets"}


class Registry(Generic[S]):
    """Named specs of one kind, filled by plugins through a ``autotl_register_*`` hook.

    ``add`` validates each spec as it arrives and raises on a duplicate, naming both plugins;
    ``get`` resolves exact names first, then open namespaces, and suggests close matches.
    """

    def __init__(self, kind: str, spec_type: type[S]) -> None:
        self.kind = kind
        self.plural = PLURALS.get(kind, f"{kind}s")
        self.spec_type = spec_type
        self._specs: dict[str, S] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._resolved: dict[str, S] = {}
        self._provider = ""

    @contextlib.contextmanager
    def providing(self, provider: str) -> Iterator[None]:
        """Attribute every ``add`` inside the block to plugin ``provider``."""
        previous, self._provider = self._provider, provider
        try:
            yield
        finally:
            self._provider = previous

    def _is_builtin(self, provider: str) -> bool:
        return not provider or provider.startswith(BUILTIN_PREFIX)

    def add(self, spec: S) -> None:
        """Register ``spec``; raises :class:`DuplicateNameError` if its name is taken."""
        if not isinstance(spec, self.spec_type):
            msg = (
                f"{self.kind} registry takes {self.spec_type.__name__} objects, "
                f"but got {type(spec).__name__}: {spec!r}."
            )
            raise TypeError(msg)
        provider = self._provider or spec.provider
        if ":" not in spec.name and not self._is_builtin(provider):
            msg = (
                f"plugin {provider!r} registered {self.kind} {spec.name!r} without a namespace; "
                f"bare names are reserved for autotl's built-ins. Use e.g. "
                f"'{provider.split('.')[0]}:{spec.name}'."
            )
            raise ValueError(msg)
        if spec.name in self._specs:
            other = self._specs[spec.name].provider
            msg = (
                f"{self.kind} {spec.name!r} is registered twice: by plugin {other!r} and by "
                f"plugin {provider!r}. Rename one (e.g. '{provider.split('.')[0]}:"
                f"{spec.name.split(':')[-1]}') or disable a plugin with "
                f"AUTOTL_DISABLE_PLUGINS={provider}."
            )
            raise DuplicateNameError(msg)
        self._specs[spec.name] = dataclasses.replace(spec, provider=provider)

    def add_namespace(self, namespace: Namespace) -> None:
        """Claim every ``<prefix>:<id>`` name; ``namespace.resolve`` builds their specs."""
        if not isinstance(namespace, Namespace):
            msg = f"add_namespace takes a Namespace, but got {type(namespace).__name__}."
            raise TypeError(msg)
        provider = self._provider or namespace.provider
        if namespace.prefix in self._namespaces:
            other = self._namespaces[namespace.prefix].provider
            msg = (
                f"{self.kind} namespace '{namespace.prefix}:' is claimed twice: by plugin "
                f"{other!r} and by plugin {provider!r}. Disable one with "
                f"AUTOTL_DISABLE_PLUGINS={provider}."
            )
            raise DuplicateNameError(msg)
        self._namespaces[namespace.prefix] = dataclasses.replace(namespace, provider=provider)

    def discard_provider(self, provider: str) -> None:
        """Drop everything ``provider`` added (used when its hook raised half-way)."""
        self._specs = {n: s for n, s in self._specs.items() if s.provider != provider}
        self._namespaces = {
            p: ns for p, ns in self._namespaces.items() if ns.provider != provider
        }

    def get(self, name: str) -> S:
        """The spec called ``name``; open namespaces resolve lazily and are cached."""
        if name in self._specs:
            return self._specs[name]
        if name in self._resolved:
            return self._resolved[name]
        prefix, sep, rest = name.partition(":")
        if sep and rest and prefix in self._namespaces:
            namespace = self._namespaces[prefix]
            spec = namespace.resolve(name)
            if not isinstance(spec, self.spec_type) or spec.name != name:
                msg = (
                    f"plugin {namespace.provider!r} resolved {self.kind} {name!r} to "
                    f"{spec!r}; expected a {self.spec_type.__name__} named {name!r}."
                )
                raise TypeError(msg)
            spec = dataclasses.replace(spec, provider=namespace.provider)
            self._resolved[name] = spec
            return spec
        raise UnknownComponentError(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        msg = f"unknown {self.kind} {name!r}."
        close = difflib.get_close_matches(name, list(self._specs), n=3, cutoff=0.6)
        prefix = name.partition(":")[0]
        close_ns = difflib.get_close_matches(prefix, list(self._namespaces), n=1, cutoff=0.6)
        if close:
            msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif ":" in name and close_ns:
            msg += f" Did you mean the namespace '{close_ns[0]}:'?"
        known = ", ".join(self._specs) or "none"
        msg += f" Registered {self.plural}: {known}."
        if self._namespaces:
            msg += " Open namespaces: " + "; ".join(
                f"{p}:<id> ({ns.description})" for p, ns in self._namespaces.items()
            ) + "."
        msg += f" `autotl list {self.plural}` shows them all."
        return msg

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern`` (``offline:*``), sorted."""
        return sorted(n for n in self._specs if fnmatch.fnmatchcase(n, pattern))

    def list(self, pattern: str = "*") -> list[S]:
        return [self._specs[n] for n in self.names(pattern)]

    @property
    def namespaces(self) -> list[Namespace]:
        return [self._namespaces[p] for p in sorted(self._namespaces)]

    def provided_by(self, provider: str) -> list[str]:
        """Names and namespaces (as ``prefix:*``) that ``provider`` registered."""
        names = [n for n, s in self._specs.items() if s.provider == provider]
        names += [f"{p}:*" for p, ns in self._namespaces.items() if ns.provider == provider]
        return sorted(names)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownComponentError:
            return False
        return True

    def __iter__(self) -> Iterator[S]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {len(self)} names, {len(self._namespaces)} namespaces>"

