from __future__ import annotations

import pytest

from autotl.errors import DuplicateNameError, UnknownComponentError
from autotl.registry import BackboneSpec, HeadSpec, Namespace, Registry, StrategySpec


def _strategy(name: str) -> StrategySpec:
    return StrategySpec(name=name, apply=lambda m, p: None, frozen_depth=lambda p, b: 0)


def _registry() -> Registry[StrategySpec]:
    return Registry("strategy", StrategySpec)


def test_add_and_get_records_provider() -> None:
    registry = _registry()
    with registry.providing("plugin-a"):
        registry.add(_strategy("a:one"))
    assert registry.get("a:one").provider == "plugin-a"
    assert registry.names() == ["a:one"]


def test_duplicate_names_raise_naming_both_providers() -> None:
    registry = _registry()
    with registry.providing("plugin-a"):
        registry.add(_strategy("x:same"))
    with registry.providing("plugin-b"), pytest.raises(DuplicateNameError) as info:
        registry.add(_strategy("x:same"))
    assert "plugin-a" in str(info.value) and "plugin-b" in str(info.value)
    assert registry.get("x:same").provider == "plugin-a"


def test_duplicate_namespace_raises() -> None:
    registry: Registry[BackboneSpec] = Registry("backbone", BackboneSpec)
    with registry.providing("one"):
        registry.add_namespace(Namespace("ns", resolve=lambda n: None, description="d"))
    with registry.providing("two"), pytest.raises(DuplicateNameError, match="one.*two"):
        registry.add_namespace(Namespace("ns", resolve=lambda n: None, description="d"))


def test_unknown_name_suggests_close_matches() -> None:
    registry = _registry()
    registry.add(_strategy("head-only"))
    with pytest.raises(UnknownComponentError, match="Did you mean 'head-only'"):
        registry.get("head_only")


def test_unknown_name_lists_the_kind_in_its_plural() -> None:
    registry = _registry()
    registry.add(_strategy("head-only"))
    with pytest.raises(UnknownComponentError) as info:
        registry.get("nothing-like-it")
    message = str(info.value)
    assert "Registered strategies: head-only." in message
    assert "`autotl list strategies`" in message and "strategys" not in message


def test_unknown_namespace_suggests_the_close_one() -> None:
    registry: Registry[BackboneSpec] = Registry("backbone", BackboneSpec)
    registry.add_namespace(Namespace("timm", resolve=lambda n: None, description="any timm"))
    with pytest.raises(UnknownComponentError, match="namespace 'timm:'"):
        registry.get("tim:resnet50")


def test_namespace_resolves_lazily_once() -> None:
    calls = []

    def resolve(name: str) -> BackboneSpec:
        calls.append(name)
        return BackboneSpec(name=name, modality="image", build=lambda pretrained: None)

    registry: Registry[BackboneSpec] = Registry("backbone", BackboneSpec)
    with registry.providing("fam"):
        registry.add_namespace(Namespace("fam", resolve=resolve, description="family"))
    assert calls == []
    first = registry.get("fam:model-a")
    assert registry.get("fam:model-a") is first
    assert calls == ["fam:model-a"]
    assert first.provider == "fam"


def test_resolver_returning_wrong_name_is_rejected() -> None:
    registry: Registry[BackboneSpec] = Registry("backbone", BackboneSpec)
    registry.add_namespace(Namespace(
        "fam", description="d",
        resolve=lambda n: BackboneSpec(name="fam:other", modality="image", build=lambda p: None),
    ))
    with pytest.raises(TypeError, match="expected a BackboneSpec named 'fam:x'"):
        registry.get("fam:x")


def test_third_party_bare_names_are_rejected_builtin_ones_allowed() -> None:
    registry = _registry()
    with registry.providing("autotl.strategies"):
        registry.add(_strategy("full"))
    with registry.providing("someone"), pytest.raises(ValueError, match="someone:mine"):
        registry.add(_strategy("mine"))


def test_wrong_spec_type_is_rejected() -> None:
    registry = _registry()
    with pytest.raises(TypeError, match="takes StrategySpec"):
        registry.add(HeadSpec(name="x:h", build=lambda d, c, p: None))


@pytest.mark.parametrize("bad", ["", "has space", ":nons", "UP:per", 3, "/bare/path"])
def test_bad_names_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="name must look like"):
        _strategy(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["hf:/models/my-bert", "hf:./my-bert", "timm:resnet50"])
def test_an_id_after_a_namespace_may_be_a_path(name: str) -> None:
    assert BackboneSpec(name=name, modality="text", build=lambda p: None).name == name


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="modality"):
        BackboneSpec(name="a:b", modality="audio", build=lambda p: None)
    with pytest.raises(ValueError, match="lr_range"):
        StrategySpec(name="a:b", apply=lambda m, p: None, frozen_depth=lambda p, b: 0,
                     lr_range=(1e-2, 1e-3))
    with pytest.raises(TypeError, match="apply must be callable"):
        StrategySpec(name="a:b", apply=None, frozen_depth=lambda p, b: 0)  # type: ignore
    with pytest.raises(TypeError, match="inapplicable must be callable"):
        StrategySpec(name="a:b", apply=lambda m, p: None, frozen_depth=lambda p, b: 0,
                     inapplicable="never")  # type: ignore[arg-type]


def test_wildcard_listing_and_discard() -> None:
    registry = _registry()
    with registry.providing("p"):
        registry.add(_strategy("off:one"))
        registry.add(_strategy("off:two"))
    with registry.providing("q"):
        registry.add(_strategy("on:three"))
    assert registry.names("off:*") == ["off:one", "off:two"]
    registry.discard_provider("p")
    assert registry.names() == ["on:three"]
    assert "on:three" in registry and "off:one" not in registry
