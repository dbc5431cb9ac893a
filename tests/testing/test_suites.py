"""Each contract of the conformance suites rejects a component deliberately broken against it.

The suites' test methods are called directly on the broken component (the built-ins pass the
same methods through pytest in tests/builtin/).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import datasets
import heavy_plugin
import pytest
import torch
from torch import nn

from autotl.backbones import Backbone
from autotl.errors import DataError
from autotl.registry import BackboneSpec, DatasetSpec, HeadSpec, StrategySpec
from autotl.testing import (
    BackboneConformance,
    DatasetConformance,
    HeadConformance,
    StrategyConformance,
    example_batch,
    tiny_cnn,
    tiny_vit,
)

# -- backbones ----------------------------------------------------------------------------------


@pytest.fixture
def cnn() -> Backbone:
    torch.manual_seed(0)
    backbone = tiny_cnn()
    backbone.module.eval()  # as the suite's own fixture leaves it
    return backbone


def _batch(backbone: Backbone) -> Any:
    return example_batch(backbone)[0]


def test_backbone_of_the_wrong_modality_is_rejected(cnn: Backbone) -> None:
    spec = BackboneSpec(name="bad:modality", modality="text", build=lambda pretrained: cnn)
    with pytest.raises(AssertionError, match="the spec says text but the backbone says image"):
        BackboneConformance().test_builds_offline_with_random_weights(spec, cnn)


def test_unpooled_output_is_rejected(cnn: Backbone) -> None:
    class Unpooled(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.forward_features(x)  # [batch, channels, h, w]: no pooling

    broken = dataclasses.replace(cnn, module=Unpooled(cnn.module))
    with pytest.raises(AssertionError, match=r"expected \[batch, feature_dim\]"):
        BackboneConformance().test_maps_its_own_preprocessed_batch_to_features(
            broken, _batch(broken))


def test_layer_groups_missing_or_repeating_a_parameter_are_rejected(cnn: Backbone) -> None:
    groups = [list(g) for g in cnn.layer_groups]
    missing = dataclasses.replace(cnn, layer_groups=[groups[0][1:], *groups[1:]])
    with pytest.raises(AssertionError, match=f"parameters in no layer group.*{groups[0][0]}"):
        BackboneConformance().test_layer_groups_cover_every_parameter_exactly_once(missing)
    twice = dataclasses.replace(cnn, layer_groups=[groups[0], [groups[0][0], *groups[1]],
                                                   *groups[2:]])
    with pytest.raises(AssertionError, match="in more than one layer group"):
        BackboneConformance().test_layer_groups_cover_every_parameter_exactly_once(twice)


def test_layer_groups_out_of_forward_order_are_rejected(cnn: Backbone) -> None:
    groups = [list(g) for g in cnn.layer_groups]
    swapped = dataclasses.replace(cnn, layer_groups=[groups[1], groups[0], *groups[2:]])
    with pytest.raises(AssertionError, match="order layer_groups input → output"):
        BackboneConformance().test_layer_groups_run_input_to_output(swapped, _batch(cnn))


def test_a_parameter_that_never_reaches_the_output_is_rejected(cnn: Backbone) -> None:
    cnn.module.unused = nn.Linear(2, 2)
    broken = dataclasses.replace(cnn, layer_groups=[*cnn.layer_groups[:-1], [
        *cnn.layer_groups[-1], "unused.weight", "unused.bias"]])
    with pytest.raises(AssertionError, match=r"never reach the output.*unused\.weight"):
        BackboneConformance().test_every_parameter_takes_part_in_the_output(
            broken, _batch(broken))


def test_lora_targets_that_are_not_linear_or_conv_are_rejected(cnn: Backbone) -> None:
    norm = next(n for n, m in cnn.module.named_modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(AssertionError, match=f"lora target '{norm}' is a BatchNorm"):
        BackboneConformance().test_lora_targets_are_linear_or_conv_modules(
            dataclasses.replace(cnn, lora_targets=[norm]))
    with pytest.raises(AssertionError, match="lora target 'no.such' does not exist"):
        BackboneConformance().test_lora_targets_are_linear_or_conv_modules(
            dataclasses.replace(cnn, lora_targets=["no.such"]))


def test_stages_that_do_not_compose_to_the_output_are_rejected(cnn: Backbone) -> None:
    def drifting(module: nn.Module) -> list[Any]:
        stages = cnn.stager(module)
        return [stages[0], lambda x: 1.01 * stages[1](x), *stages[2:]]

    broken = dataclasses.replace(cnn, stager=drifting)
    with pytest.raises(AssertionError, match="differs from the module's output"):
        BackboneConformance().test_stages_reproduce_the_output(broken, _batch(cnn))


def test_a_stage_running_a_later_group_is_rejected() -> None:
    torch.manual_seed(0)
    vit = tiny_vit()

    def early(module: nn.Module) -> list[Any]:
        stages = vit.stager(module)
        # Stage 0 also runs block 0 (group 1) and stage 1 does nothing: the composition is
        # still exact, but a prefix cached at depth 1 would hold a trainable block's output.
        return [lambda x: stages[1](stages[0](x)), lambda x: x, *stages[2:]]

    broken = dataclasses.replace(vit, stager=early)
    with pytest.raises(AssertionError, match=r"stage 0 runs \['blocks\.0\..*later layer groups"):
        BackboneConformance().test_stages_reproduce_the_output(broken, _batch(vit))


def test_a_weights_id_that_changes_per_build_is_rejected(cnn: Backbone) -> None:
    counter = iter(range(100))
    spec = BackboneSpec(name="bad:unstable", modality="image", build=lambda pretrained:
                        dataclasses.replace(cnn, weights_id=f"build-{next(counter)}"))
    with pytest.raises(AssertionError, match="weights_id changed between two builds"):
        BackboneConformance().test_weights_id_is_stable(spec, spec.build(False))


def test_a_copy_sharing_the_module_is_rejected(cnn: Backbone) -> None:
    class Shallow(Backbone):
        def copy(self) -> Backbone:
            return dataclasses.replace(self)  # the same module object

    broken = Shallow(**{f.name: getattr(cnn, f.name) for f in dataclasses.fields(cnn)})
    with pytest.raises(AssertionError):
        BackboneConformance().test_copy_is_independent(broken)


def test_a_plugin_importing_torch_when_listed_is_rejected() -> None:
    class TestHeavy(HeadConformance):
        head_name = "heavy:linear"
        extra_plugins = (heavy_plugin,)

    with pytest.raises(AssertionError, match=r"listing plugins imported \[.*'torch'"):
        TestHeavy().test_listing_imports_no_torch()


# -- heads --------------------------------------------------------------------------------------


def _linear(feature_dim: int, num_classes: int, params: Any) -> nn.Module:
    return nn.Linear(feature_dim, num_classes)


def test_a_head_ignoring_num_classes_is_rejected() -> None:
    spec = HeadSpec(name="bad:fixed", build=lambda d, c, p: nn.Linear(d, 3))
    with pytest.raises(AssertionError, match=r"logits of shape \(4, 3\).*expected \(4, 10\)"):
        HeadConformance().test_logits_have_the_right_shape(spec)


def test_a_head_with_a_frozen_or_unused_parameter_is_rejected() -> None:
    def frozen(d: int, c: int, p: Any) -> nn.Module:
        head = nn.Linear(d, c)
        head.bias.requires_grad_(False)
        return head

    with pytest.raises(AssertionError, match=r"parameters frozen: \['bias'\]"):
        HeadConformance().test_every_parameter_trains(HeadSpec(name="bad:frozen", build=frozen))

    class Spare(nn.Module):
        def __init__(self, d: int, c: int) -> None:
            super().__init__()
            self.linear = nn.Linear(d, c)
            self.spare = nn.Linear(2, 2)  # never called

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

    def unused(d: int, c: int, p: Any) -> nn.Module:
        return Spare(d, c)

    with pytest.raises(AssertionError, match=r"get no gradient: \['spare.bias', 'spare.weight'"):
        HeadConformance().test_every_parameter_trains(HeadSpec(name="bad:unused", build=unused))


def test_a_head_naming_its_param_without_the_prefix_is_rejected() -> None:
    """The example from the issue: ``scale`` instead of ``<head>.scale`` registers and runs,
    and plan_from_params then silently drops it."""
    spec = HeadSpec(name="bad:cosine", build=_linear,
                    suggest=lambda trial: {"scale": trial.suggest_float("scale", 1.0, 30.0)})
    with pytest.raises(AssertionError, match=r"named parameter\(s\) \['scale'\]; name each "
                                             r"'bad:cosine.<param>' \(e.g. 'bad:cosine.scale'\)"):
        HeadConformance().test_suggest_names_are_prefixed(spec)


def test_a_head_returning_other_values_than_it_drew_is_rejected() -> None:
    spec = HeadSpec(name="bad:double", build=_linear, suggest=lambda trial: {
        "scale": 2 * trial.suggest_float("bad:double.scale", 1.0, 30.0)})
    with pytest.raises(AssertionError, match="return the drawn values"):
        HeadConformance().test_suggest_names_are_prefixed(spec)


def test_head_defaults_outside_the_space_are_rejected() -> None:
    def suggest(trial: Any) -> dict[str, Any]:
        return {"hidden": trial.suggest_categorical("bad:mlp.hidden", [64, 128])}

    outside = HeadSpec(name="bad:mlp", build=_linear, suggest=suggest,
                       default_params={"hidden": 256})
    with pytest.raises(AssertionError, match="default_params sets hidden=256, outside"):
        HeadConformance().test_default_params_lie_inside_the_space(outside)
    unsearched = HeadSpec(name="bad:mlp", build=_linear, suggest=suggest,
                          default_params={"hidden": 64, "dropout": 0.1})
    with pytest.raises(AssertionError, match="sets 'dropout', which suggest never draws"):
        HeadConformance().test_default_params_lie_inside_the_space(unsearched)


# -- strategies ---------------------------------------------------------------------------------


def _train_all(model: Any, params: Any) -> None:
    """Leaves every parameter trainable."""


def test_a_strategy_overstating_its_frozen_prefix_is_rejected(cnn: Backbone) -> None:
    spec = StrategySpec(name="bad:depth", apply=_train_all,
                        frozen_depth=lambda params, backbone: 2)
    with pytest.raises(AssertionError, match="declares the first 2 layer groups frozen, but "
                                             "training changed"):
        StrategyConformance().test_declared_frozen_prefix_is_untouched(spec, cnn, {})


def test_a_strategy_whose_trainable_parameter_gets_no_gradient_is_rejected(
        cnn: Backbone) -> None:
    def dangling(model: Any, params: Any) -> None:
        model.backbone.register_parameter("dangling", nn.Parameter(torch.zeros(3)))

    spec = StrategySpec(name="bad:dangling", apply=dangling,
                        frozen_depth=lambda params, backbone: 0)
    with pytest.raises(AssertionError, match=r"get no gradient: \['backbone.dangling'\]"):
        StrategyConformance().test_only_trainable_parameters_change(spec, cnn, {})


def test_a_strategy_that_freezes_the_head_is_rejected(cnn: Backbone) -> None:
    spec = StrategySpec(name="bad:headless", frozen_depth=lambda params, backbone: 0,
                        apply=lambda model, params: model.head.requires_grad_(False))
    with pytest.raises(AssertionError):
        StrategyConformance().test_head_trains(spec, cnn, {})


def test_a_strategy_naming_its_param_without_the_prefix_is_rejected(cnn: Backbone) -> None:
    spec = StrategySpec(name="bad:rank", apply=_train_all, frozen_depth=lambda p, b: 0,
                        suggest=lambda trial, backbone: {
                            "r": trial.suggest_int("r", 1, 8)})
    with pytest.raises(AssertionError, match=r"named parameter\(s\) \['r'\]"):
        StrategyConformance().test_suggest_names_are_prefixed(spec, cnn)
    drawing_lr = StrategySpec(name="bad:lr", apply=_train_all, frozen_depth=lambda p, b: 0,
                              suggest=lambda trial, backbone: {
                                  "lr": trial.suggest_float("bad:lr.lr", 1e-4, 1e-2)})
    with pytest.raises(AssertionError, match=r"drew \['bad:lr.lr'\], which autotl draws"):
        StrategyConformance().test_suggest_names_are_prefixed(drawing_lr, cnn)


def test_known_good_outside_lr_range_or_space_is_rejected(cnn: Backbone) -> None:
    fast = StrategySpec(name="bad:fast", apply=_train_all, frozen_depth=lambda p, b: 0,
                        lr_range=(1e-5, 1e-3), known_good=lambda backbone: [{"lr": 1e-2}])
    with pytest.raises(AssertionError, match=r"known-good lr 0.01 lies outside lr_range "
                                             r"\(1e-05, 0.001\)"):
        StrategyConformance().test_known_good_lies_inside_the_space(fast, cnn)
    stray = StrategySpec(name="bad:stray", apply=_train_all, frozen_depth=lambda p, b: 0,
                         known_good=lambda backbone: [{"lr": 1e-3, "r": 8}])
    with pytest.raises(AssertionError, match="sets 'r', which suggest never draws"):
        StrategyConformance().test_known_good_lies_inside_the_space(stray, cnn)


def test_applicability_without_a_reason_is_rejected(cnn: Backbone) -> None:
    spec = StrategySpec(name="bad:silent", apply=_train_all, frozen_depth=lambda p, b: 0,
                        inapplicable=lambda backbone: "")
    with pytest.raises(AssertionError, match="None .applies. or a non-empty reason"):
        StrategyConformance().test_applicability_is_a_reason_or_none(spec, cnn)


# -- datasets -----------------------------------------------------------------------------------


def _dataset(labels: list[int], names: list[str], **columns: Any) -> datasets.Dataset:
    features = datasets.Features({
        **{k: datasets.Value("string") for k in columns},
        "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({**columns, "label": labels}, features=features)


SPEC = DatasetSpec(name="bad:texts", modality="text", load=lambda: None)


def test_a_dataset_without_a_train_split_is_rejected() -> None:
    data = datasets.DatasetDict({"training": _dataset([0, 1], ["a", "b"], text=["x", "y"])})
    with pytest.raises(AssertionError, match=r"no 'train' split \(has \['training'\]\)"):
        DatasetConformance().test_load_gives_train_and_optionally_test(SPEC, data)
    with pytest.raises(AssertionError, match="must return a datasets.DatasetDict"):
        DatasetConformance().test_load_gives_train_and_optionally_test(SPEC, {"train": []})


def test_a_dataset_may_bring_one_validation_split_not_two() -> None:
    split = _dataset([0, 1], ["a", "b"], text=["x", "y"])
    DatasetConformance().test_load_gives_train_and_optionally_test(
        SPEC, datasets.DatasetDict({"train": split, "validation": split}))
    with pytest.raises(AssertionError, match="at most one validation split"):
        DatasetConformance().test_load_gives_train_and_optionally_test(
            SPEC, datasets.DatasetDict({"train": split, "validation": split, "val": split}))
    with pytest.raises(AssertionError, match="'train', 'test' and one validation split"):
        DatasetConformance().test_load_gives_train_and_optionally_test(
            SPEC, datasets.DatasetDict({"train": split, "dev": split}))


def test_a_dataset_with_a_plain_integer_label_is_rejected() -> None:
    plain = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [0, 1]})
    with pytest.raises(AssertionError, match="'label' must be a ClassLabel"):
        DatasetConformance().test_columns_are_the_modality_and_a_class_label(
            SPEC, datasets.DatasetDict({"train": plain}))


def test_a_dataset_without_its_modality_column_is_rejected() -> None:
    data = datasets.DatasetDict({"train": _dataset([0, 1], ["a", "b"], sentence=["x", "y"])})
    with pytest.raises(AssertionError, match="the spec says text but there is no 'text' column"):
        DatasetConformance().test_columns_are_the_modality_and_a_class_label(SPEC, data)


def test_a_dataset_with_a_class_missing_from_train_is_rejected() -> None:
    data = datasets.DatasetDict({"train": _dataset([0, 0], ["a", "b"], text=["x", "y"])})
    with pytest.raises(AssertionError, match=r"classes without a training example: \['b'\]"):
        DatasetConformance().test_every_class_is_in_train(SPEC, data)


def test_a_network_dataset_failing_offline_without_a_clear_error_is_rejected() -> None:
    class TestHub(DatasetConformance):
        needs_network = True

    def raw_failure() -> Any:
        raise ConnectionError("Max retries exceeded")

    with pytest.raises(ConnectionError):
        TestHub().test_fails_offline_with_a_clear_error(
            DatasetSpec(name="bad:hub", modality="text", load=raw_failure))

    def vague() -> Any:
        raise DataError("offline")

    with pytest.raises(AssertionError, match="does not name the dataset"):
        TestHub().test_fails_offline_with_a_clear_error(
            DatasetSpec(name="bad:someone/thing", modality="text", load=vague))
