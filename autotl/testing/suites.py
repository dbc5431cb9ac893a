"""Reusable conformance suites, one per component kind: subclass one, set the component's name,
and pytest checks the contract the search relies on (like ``optuna.testing``).

The component is looked up in a fresh :func:`autotl.load_plugins` (built-ins and installed
entry points); a plugin that is not installed can be passed in ``extra_plugins``. Each suite
also checks that listing the plugins imports no torch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import optuna
import pytest
import torch

from autotl.backbones import Backbone
from autotl.errors import AutoTLError
from autotl.models import TransferModel
from autotl.plugins import Plugins, load_plugins
from autotl.registry import BackboneSpec, DatasetSpec, HeadSpec, StrategySpec
from autotl.testing.backbones import tiny_bert, tiny_cnn, tiny_vit
from autotl.testing.inputs import NUM_CLASSES, example_batch, forward

HEAVY_MODULES = ("torch", "timm", "transformers", "peft", "optuna", "datasets")
SPACE_SAMPLES = 8  # random draws of a suggest function: enough to reach conditional branches
# The relative error the activation cache accepts between a backbone's stages and its forward.
STAGE_TOLERANCE = 1e-4
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# -- helpers shared by the suites ---------------------------------------------------------------


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer, by name."""
    state = {f"param:{n}": p.detach().clone() for n, p in model.named_parameters()}
    state.update({f"buffer:{n}": b.detach().clone() for n, b in model.named_buffers()})
    return state


def changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    """Names (``param:…``/``buffer:…``) whose values differ from ``before``."""
    after = snapshot(model)
    return {n for n, t in before.items() if not torch.equal(t, after[n])}


def train_steps(model: TransferModel, backbone: Backbone, steps: int = 2,
                lr: float = 0.1) -> None:
    """A few plain SGD steps on a tiny batch (two, so LoRA's zero-initialised B lets A move)."""
    inputs, labels = example_batch(backbone)
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """No hub access: the environment variables, and the constants of hub libraries already
    imported (they read the variables once, at import)."""
    saved = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    patched = []
    for module_name, attrs in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                               ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))):
        module = sys.modules.get(module_name)
        for attr in attrs if module is not None else ():
            if hasattr(module, attr):
                patched.append((module, attr, getattr(module, attr)))
                setattr(module, attr, True)
    try:
        yield
    finally:
        for module, attr, value in patched:
            setattr(module, attr, value)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def drawn_spaces(suggest: Callable[[optuna.Trial], Any],
                 samples: int = SPACE_SAMPLES) -> list[tuple[dict[str, Any], Any, Any]]:
    """Run ``suggest`` on ``samples`` random trials: ``(drawn params, what suggest returned,
    the drawn distributions)`` of each."""
    verbosity = optuna.logging.get_verbosity()  # "a new study created" per check is noise
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)
    draws = []
    for _ in range(samples):
        trial = study.ask()
        returned = suggest(trial)
        draws.append((dict(trial.params), returned, dict(trial.distributions)))
        study.tell(trial, 0.0)
    return draws


def check_prefixed(owner: str, draws: list[tuple[dict[str, Any], Any, Any]],
                   reserved: Sequence[str] = ()) -> None:
    """Every parameter ``owner``'s suggest draws is named ``<owner>.<param>`` and returned
    without the prefix: what turns a stored trial back into a plan (size-map re-runs, prior
    enqueues) relies on it."""
    prefix = f"{owner}."
    for params, returned, _ in draws:
        bad = sorted(n for n in params if not n.startswith(prefix))
        assert not bad, (
            f"{owner}: suggest named parameter(s) {bad}; name each '{prefix}<param>' (e.g. "
            f"'{prefix}{bad[0]}') so a stored trial can be turned back into a plan")
        clash = sorted(n for n in params if n in reserved)
        assert not clash, f"{owner}: suggest drew {clash}, which autotl draws itself"
        assert isinstance(returned, Mapping), (
            f"{owner}: suggest must return a dict of its parameters, but got {returned!r}")
        expected = {n.removeprefix(prefix): v for n, v in params.items()}
        assert dict(returned) == expected, (
            f"{owner}: suggest returned {dict(returned)!r} but drew {params!r}; return the "
            f"drawn values under their names without '{prefix}'")


def check_inside_space(owner: str, what: str, config: Mapping[str, Any],
                       draws: list[tuple[dict[str, Any], Any, Any]]) -> None:
    """Each key of ``config`` is a parameter ``owner``'s suggest draws, with a value inside its
    distribution (an enqueued config outside the space is not a point the sampler can learn
    from, and Optuna warns about it)."""
    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    for _, _, dists in draws:
        distributions.update(dists)
    for key, value in config.items():
        name = f"{owner}.{key}"
        assert name in distributions, (
            f"{owner}: {what} sets {key!r}, which suggest never draws (it draws "
            f"{sorted(distributions) or 'nothing'}); add '{name}' to suggest or drop the key")
        dist = distributions[name]
        try:
            inside = dist._contains(dist.to_internal_repr(value))
        except (ValueError, TypeError):
            inside = False
        assert inside, f"{owner}: {what} sets {key}={value!r}, outside {dist}"


@functools.lru_cache(maxsize=None)
def heavy_imports_when_listing(plugin_modules: tuple[str, ...] = ()) -> list[str]:
    """Heavy modules a fresh interpreter holds after loading every plugin (and the given plugin
    modules) and filling every registry, as ``autotl list`` does."""
    code = (
        "import importlib, json, sys\n"
        "from autotl.plugins import load_plugins\n"
        f"extra = [importlib.import_module(m) for m in {list(plugin_modules)!r}]\n"
        "load_plugins(extra=extra).fill_all()\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY_MODULES)!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        msg = f"listing the plugins failed:\n{out.stderr[-2000:]}"
        raise AssertionError(msg)
    return json.loads(out.stdout.strip().splitlines()[-1])


class _Suite:
    """What every suite shares: how the component is found, and the listing check."""

    #: Plugins to register besides the built-ins and installed entry points (modules or
    #: objects with hook implementations), for a plugin that is not installed.
    extra_plugins: ClassVar[Sequence[object]] = ()

    @classmethod
    def plugins(cls) -> Plugins:
        return load_plugins(extra=list(cls.extra_plugins))

    def test_listing_imports_no_torch(self) -> None:
        modules = tuple(p.__name__ for p in self.extra_plugins if isinstance(p, types.ModuleType))
        heavy = heavy_imports_when_listing(modules)
        assert heavy == [], (
            f"listing plugins imported {heavy}: import them inside the functions you register "
            "(build, apply, load, …), and heavy types only under `if TYPE_CHECKING:`")


# -- backbones ----------------------------------------------------------------------------------


def _owner(parameter: str) -> str:
    return parameter.rsplit(".", 1)[0] if "." in parameter else ""


def _group_of_modules(backbone: Backbone) -> dict[str, int]:
    """Module name → the (first) layer group holding one of its own parameters."""
    groups: dict[str, int] = {}
    for index, group in enumerate(backbone.layer_groups):
        for name in group:
            owner = _owner(name)
            if owner:  # parameters of the root module run with the whole forward
                groups.setdefault(owner, index)
    return groups


@contextlib.contextmanager
def _calls(module: torch.nn.Module, names: set[str]) -> Iterator[list[str]]:
    """Record, in order, the named submodules called inside the block."""
    seen: list[str] = []
    handles = [sub.register_forward_pre_hook(lambda *_args, n=name: seen.append(n))
               for name, sub in module.named_modules() if name in names]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


class BackboneConformance(_Suite):
    """Contract tests for a registered backbone; set ``backbone_name`` in the subclass.

    The backbone is built offline with ``pretrained=False``; its own preprocessing turns tiny
    PIL images (or strings) into the batch every check runs on.
    """

    backbone_name: ClassVar[str] = ""

    @pytest.fixture(scope="class")
    @classmethod
    def spec(cls) -> BackboneSpec:
        return cls.plugins().backbones.get(cls.backbone_name)

    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls, spec: BackboneSpec) -> Backbone:
        torch.manual_seed(0)
        with offline():
            built = spec.build(False)
        built.module.eval()
        return built

    @pytest.fixture(scope="class")
    @classmethod
    def batch(cls, backbone: Backbone) -> Any:
        return example_batch(backbone)[0]

    def test_builds_offline_with_random_weights(self, spec: BackboneSpec,
                                                backbone: Backbone) -> None:
        assert isinstance(backbone, Backbone), (
            f"{spec.name}: build must return autotl.backbones.Backbone, got {type(backbone)}")
        assert backbone.modality == spec.modality, (
            f"{spec.name}: the spec says {spec.modality} but the backbone says "
            f"{backbone.modality}")
        assert isinstance(backbone.feature_dim, int) and backbone.feature_dim > 0
        assert isinstance(backbone.weights_id, str) and backbone.weights_id

    def test_maps_its_own_preprocessed_batch_to_features(self, backbone: Backbone,
                                                         batch: Any) -> None:
        with torch.no_grad():
            features = forward(backbone.module, batch)
        size = len(batch["input_ids"]) if isinstance(batch, dict) else len(batch)
        assert tuple(features.shape) == (size, backbone.feature_dim), (
            f"{backbone.name}: module output has shape {tuple(features.shape)}, expected "
            f"[batch, feature_dim] = {(size, backbone.feature_dim)} (pool inside the module)")
        assert torch.isfinite(features).all()

    def test_layer_groups_cover_every_parameter_exactly_once(self, backbone: Backbone) -> None:
        listed = [name for group in backbone.layer_groups for name in group]
        params = {name for name, _ in backbone.module.named_parameters()}
        twice = sorted({n for n in listed if listed.count(n) > 1})
        assert not twice, f"{backbone.name}: parameters in more than one layer group: {twice}"
        unknown = sorted(set(listed) - params)
        assert not unknown, f"{backbone.name}: layer groups name no such parameters: {unknown}"
        missing = sorted(params - set(listed))
        assert not missing, f"{backbone.name}: parameters in no layer group: {missing[:10]}"
        empty = [i for i, group in enumerate(backbone.layer_groups) if not group]
        assert not empty, f"{backbone.name}: layer groups {empty} are empty"

    def test_layer_groups_run_input_to_output(self, backbone: Backbone, batch: Any) -> None:
        """Freeze depth k means 'the first k groups', so groups must be in forward order."""
        groups = _group_of_modules(backbone)
        with _calls(backbone.module, set(groups)) as seen, torch.no_grad():
            forward(backbone.module, batch)
        first_calls = list(dict.fromkeys(seen))
        for earlier, later in zip(first_calls, first_calls[1:], strict=False):
            assert groups[earlier] <= groups[later], (
                f"{backbone.name}: {later!r} (layer group {groups[later]}) runs after "
                f"{earlier!r} (group {groups[earlier]}); order layer_groups input → output")

    def test_every_parameter_takes_part_in_the_output(self, backbone: Backbone,
                                                      batch: Any) -> None:
        module = backbone.copy().module
        forward(module, batch).float().pow(2).sum().backward()
        unused = [n for n, p in module.named_parameters() if p.grad is None]
        assert not unused, (
            f"{backbone.name}: parameters that never reach the output (drop them, as "
            f"hf_backbone drops the pooler, or 'full' reports them as trained): {unused[:10]}")

    def test_lora_targets_are_linear_or_conv_modules(self, backbone: Backbone) -> None:
        modules = dict(backbone.module.named_modules())
        kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
        for target in backbone.lora_targets:
            assert target in modules, f"{backbone.name}: lora target {target!r} does not exist"
            module = modules[target]
            # transformers' GPT-2 style Conv1D is a linear layer with transposed weights
            assert isinstance(module, kinds) or type(module).__name__ == "Conv1D", (
                f"{backbone.name}: lora target {target!r} is a {type(module).__name__}, not a "
                "Linear or Conv layer")

    def test_stages_reproduce_the_output(self, backbone: Backbone, batch: Any) -> None:
        stages = backbone.stages()
        if stages is None:
            pytest.skip(f"{backbone.name} gives no stage split (the cache then reuses only "
                        "inputs and pooled features)")
        groups = _group_of_modules(backbone)
        state: Any = batch
        with torch.no_grad():
            whole = forward(backbone.module, batch)
            for index, stage in enumerate(stages):
                with _calls(backbone.module, set(groups)) as seen:
                    state = stage(state)
                if index < backbone.n_groups:  # the last callable pools; it may use any group
                    later = sorted({n for n in seen if groups[n] > index})
                    assert not later, (
                        f"{backbone.name}: stage {index} runs {later}, which belong to later "
                        "layer groups; a cached prefix would then go stale when they train")
        scale = whole.abs().max().item() + 1e-6
        error = (state - whole).abs().max().item() / scale
        assert error <= STAGE_TOLERANCE, (
            f"{backbone.name}: running stages() one after another differs from the module's "
            f"output by {error:.2e} (relative); the cache needs <= {STAGE_TOLERANCE}")

    def test_weights_id_is_stable(self, spec: BackboneSpec, backbone: Backbone) -> None:
        with offline():
            again = spec.build(False)
        assert again.weights_id == backbone.weights_id, (
            f"{spec.name}: weights_id changed between two builds ({backbone.weights_id!r}, "
            f"{again.weights_id!r}); cached activations are keyed by it")
        assert again.layer_groups == backbone.layer_groups
        assert again.lora_targets == backbone.lora_targets

    def test_copy_is_independent(self, backbone: Backbone) -> None:
        before = snapshot(backbone.module)
        duplicate = backbone.copy()
        assert duplicate.module is not backbone.module
        with torch.no_grad():
            for param in duplicate.module.parameters():
                param.add_(1.0)
        assert not changed(before, backbone.module), (
            f"{backbone.name}: changing a copy() changed the original; trials would leak")
        assert duplicate.layer_groups == backbone.layer_groups


# -- heads --------------------------------------------------------------------------------------


class HeadConformance(_Suite):
    """Contract tests for a registered head; set ``head_name`` in the subclass."""

    head_name: ClassVar[str] = ""
    #: (feature_dim, num_classes) pairs every check builds the head for.
    shapes: ClassVar[Sequence[tuple[int, int]]] = ((16, 3), (7, 10))

    @pytest.fixture(scope="class")
    @classmethod
    def spec(cls) -> HeadSpec:
        return cls.plugins().heads.get(cls.head_name)

    def param_sets(self, spec: HeadSpec) -> list[dict[str, Any]]:
        """The defaults, then what a few random draws of suggest produce (over the defaults,
        as the search combines them)."""
        drawn = [dict(returned) for _, returned, _ in drawn_spaces(spec.suggest)]
        return [dict(spec.default_params)] + [{**spec.default_params, **d} for d in drawn]

    def test_logits_have_the_right_shape(self, spec: HeadSpec) -> None:
        for params in self.param_sets(spec):
            for feature_dim, num_classes in self.shapes:
                head = spec.build(feature_dim, num_classes, params)
                head.eval()
                logits = head(torch.randn(4, feature_dim))
                assert tuple(logits.shape) == (4, num_classes), (
                    f"{spec.name} with {params}: logits of shape {tuple(logits.shape)} for "
                    f"features [4, {feature_dim}] and {num_classes} classes, expected "
                    f"{(4, num_classes)}")

    def test_every_parameter_trains(self, spec: HeadSpec) -> None:
        for params in self.param_sets(spec):
            head = spec.build(16, 3, params)
            named = dict(head.named_parameters())
            assert named, f"{spec.name}: the head has no parameters, so nothing can learn"
            frozen = sorted(n for n, p in named.items() if not p.requires_grad)
            assert not frozen, f"{spec.name} with {params}: parameters frozen: {frozen}"
            head.train()
            logits = head(torch.randn(8, 16))
            torch.nn.functional.cross_entropy(logits, torch.arange(8) % 3).backward()
            no_grad = sorted(n for n, p in named.items() if p.grad is None)
            assert not no_grad, (
                f"{spec.name} with {params}: parameters get no gradient: {no_grad}")

    def test_suggest_names_are_prefixed(self, spec: HeadSpec) -> None:
        check_prefixed(spec.name, drawn_spaces(spec.suggest))

    def test_default_params_lie_inside_the_space(self, spec: HeadSpec) -> None:
        check_inside_space(spec.name, "default_params", spec.default_params,
                           drawn_spaces(spec.suggest))


# -- strategies ---------------------------------------------------------------------------------


class StrategyConformance(_Suite):
    """Contract tests for a registered strategy; set ``strategy_name`` in the subclass.

    On each tiny backbone (a CNN, a ViT, a BERT) the strategy says whether it applies; where it
    does, its known-good config is applied and trained for two steps: the head trains, every
    parameter it marks trainable gets a gradient, nothing else changes, and the frozen prefix
    it declares stays exactly as it was (weights and running statistics).
    """

    strategy_name: ClassVar[str] = ""
    backbone_factories: ClassVar[dict[str, Callable[[], Backbone]]] = {
        "cnn": tiny_cnn, "vit": tiny_vit, "bert": tiny_bert,
    }

    @pytest.fixture(scope="class")
    @classmethod
    def spec(cls) -> StrategySpec:
        return cls.plugins().strategies.get(cls.strategy_name)

    @pytest.fixture(params=sorted(backbone_factories))
    def any_backbone(self, request: pytest.FixtureRequest) -> Backbone:
        torch.manual_seed(0)
        return self.backbone_factories[request.param]()

    @pytest.fixture
    def backbone(self, spec: StrategySpec, any_backbone: Backbone) -> Backbone:
        reason = spec.inapplicable(any_backbone)
        if reason:
            pytest.skip(f"{spec.name} does not apply to {any_backbone.name}: {reason}")
        return any_backbone

    @pytest.fixture
    def params(self, spec: StrategySpec, backbone: Backbone) -> dict[str, Any]:
        config = dict(spec.known_good(backbone)[0])
        config.pop("lr", None)
        return config

    def build(self, spec: StrategySpec, backbone: Backbone,
              params: dict[str, Any]) -> TransferModel:
        head = torch.nn.Linear(backbone.feature_dim, NUM_CLASSES)
        model = TransferModel(backbone, head)
        spec.apply(model, params)
        return model

    def draws(self, spec: StrategySpec, backbone: Backbone) -> list[tuple[Any, Any, Any]]:
        return drawn_spaces(lambda trial: spec.suggest(trial, backbone))

    def test_applicability_is_a_reason_or_none(self, spec: StrategySpec,
                                               any_backbone: Backbone) -> None:
        before = snapshot(any_backbone.module)
        reason = spec.inapplicable(any_backbone)
        assert reason is None or (isinstance(reason, str) and reason.strip()), (
            f"{spec.name}: inapplicable must return None (applies) or a non-empty reason, "
            f"but got {reason!r}")
        assert spec.inapplicable(any_backbone) == reason, f"{spec.name}: answers differ"
        assert not changed(before, any_backbone.module), (
            f"{spec.name}: inapplicable changed the backbone; it may only look")

    def test_head_trains(self, spec: StrategySpec, backbone: Backbone,
                         params: dict[str, Any]) -> None:
        model = self.build(spec, backbone, params)
        assert all(p.requires_grad for p in model.head.parameters())

    def test_only_trainable_parameters_change(self, spec: StrategySpec, backbone: Backbone,
                                              params: dict[str, Any]) -> None:
        model = self.build(spec, backbone, params)
        trainable = {f"param:{n}" for n, p in model.named_parameters() if p.requires_grad}
        before = snapshot(model)
        train_steps(model, backbone)
        moved = {n for n in changed(before, model) if n.startswith("param:")}
        assert moved <= trainable, f"frozen parameters changed: {sorted(moved - trainable)}"
        assert {f"param:head.{n}" for n, _ in model.head.named_parameters()} <= moved
        # Every trainable parameter is connected to the loss (LoRA's A matrices get exactly
        # zero gradient while B is still zero, so "received a gradient" is the contract).
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert no_grad == [], f"trainable parameters that get no gradient: {no_grad}"

    def test_declared_frozen_prefix_is_untouched(self, spec: StrategySpec, backbone: Backbone,
                                                 params: dict[str, Any]) -> None:
        depth = spec.frozen_depth(params, backbone)
        assert 0 <= depth <= backbone.n_groups
        model = self.build(spec, backbone, params)
        frozen = {name for group in backbone.layer_groups[:depth] for name in group}
        prefixes = tuple(name.rsplit(".", 1)[0] + "." for name in frozen)
        before = snapshot(model)
        train_steps(model, backbone)
        moved = changed(before, model)
        # Neither weights nor running statistics inside the frozen prefix may change.
        touched = [n for n in moved
                   if n.split(":", 1)[1].removeprefix("backbone.").startswith(prefixes)]
        assert touched == [], (
            f"{spec.name} declares the first {depth} layer groups frozen, but training changed "
            f"{touched[:5]}; report a smaller frozen_depth (the cache reuses that prefix)")

    def test_suggest_names_are_prefixed(self, spec: StrategySpec, backbone: Backbone) -> None:
        check_prefixed(spec.name, self.draws(spec, backbone), reserved=(f"{spec.name}.lr",))

    def test_known_good_lies_inside_the_space(self, spec: StrategySpec,
                                              backbone: Backbone) -> None:
        configs = spec.known_good(backbone)
        assert configs, f"{spec.name}: known_good must list at least one config"
        low, high = spec.lr_range
        draws = self.draws(spec, backbone)
        for config in configs:
            assert "lr" in config, f"{spec.name}: known-good config {config} has no 'lr'"
            assert low <= config["lr"] <= high, (
                f"{spec.name}: known-good lr {config['lr']} lies outside lr_range {spec.lr_range}")
            own = {k: v for k, v in config.items() if k != "lr"}
            check_inside_space(spec.name, f"known-good config {config}", own, draws)


# -- datasets -----------------------------------------------------------------------------------


class DatasetConformance(_Suite):
    """Contract tests for a registered dataset; set ``dataset_name`` in the subclass.

    ``load()`` runs offline and must give a ``datasets.DatasetDict`` with ``train`` (and
    optionally ``test``), an ``image`` or ``text`` column and a ``ClassLabel`` ``label``, every
    class present in train. For a dataset that needs the network, set ``needs_network = True``:
    the suite then checks that loading offline fails with an autotl error naming it.
    """

    dataset_name: ClassVar[str] = ""
    needs_network: ClassVar[bool] = False

    @pytest.fixture(scope="class")
    @classmethod
    def spec(cls) -> DatasetSpec:
        return cls.plugins().datasets.get(cls.dataset_name)

    @pytest.fixture
    def loaded(self, spec: DatasetSpec) -> Any:
        if self.needs_network:
            pytest.skip(f"{spec.name} needs the network")
        with offline():
            return spec.load()

    def test_load_gives_train_and_optionally_test(self, spec: DatasetSpec, loaded: Any) -> None:
        import datasets

        from autotl.data.sources import VALIDATION_SPLITS

        assert isinstance(loaded, datasets.DatasetDict), (
            f"{spec.name}: load() must return a datasets.DatasetDict, got {type(loaded)}")
        assert "train" in loaded, f"{spec.name}: no 'train' split (has {list(loaded)})"
        assert set(loaded) <= {"train", "test", *VALIDATION_SPLITS}, (
            f"{spec.name}: splits {sorted(loaded)}; autotl reads 'train', 'test' and one "
            f"validation split ({', '.join(VALIDATION_SPLITS)}) only")
        assert len(set(loaded) & set(VALIDATION_SPLITS)) <= 1, (
            f"{spec.name}: splits {sorted(loaded)}; give at most one validation split")
        assert len(loaded["train"]) > 0

    def test_columns_are_the_modality_and_a_class_label(self, spec: DatasetSpec,
                                                        loaded: Any) -> None:
        import datasets
        from PIL import Image

        names = None
        for split, data in loaded.items():
            features = data.features
            assert isinstance(features.get("label"), datasets.ClassLabel), (
                f"{spec.name}[{split}]: 'label' must be a ClassLabel, got "
                f"{features.get('label')!r}")
            assert names in (None, features["label"].names), (
                f"{spec.name}: class names differ between splits")
            names = features["label"].names
            column = spec.modality
            assert column in features, (
                f"{spec.name}[{split}]: the spec says {spec.modality} but there is no "
                f"{column!r} column (columns: {list(features)})")
            first = data[0][column]
            if column == "image":
                assert isinstance(features[column], datasets.Image)
                assert isinstance(first, Image.Image)
            else:
                assert isinstance(first, str)
        assert names is not None and len(names) >= 2, f"{spec.name}: needs at least 2 classes"

    def test_every_class_is_in_train(self, spec: DatasetSpec, loaded: Any) -> None:
        train = loaded["train"]
        missing = sorted(set(range(train.features["label"].num_classes)) - set(train["label"]))
        names = train.features["label"].names
        assert not missing, (
            f"{spec.name}: classes without a training example: {[names[i] for i in missing]}")

    def test_fails_offline_with_a_clear_error(self, spec: DatasetSpec) -> None:
        if not self.needs_network:
            pytest.skip(f"{spec.name} loads without a network (checked by the other tests)")
        with offline(), pytest.raises(AutoTLError) as info:
            spec.load()
        ident = spec.name.partition(":")[2] or spec.name
        assert ident in str(info.value), (
            f"{spec.name}: the offline error does not name the dataset: {info.value}")
