"""Small data: trials scored over repeated stratified folds of every row, the final refit."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
import tiny_components
import torch

from autotl.config import SearchConfig
from autotl.data.splits import label_array
from autotl.folds import (
    Fold,
    FoldScheme,
    make_folds,
    pool_outcomes,
    run_folds,
    scheme_for,
)
from autotl.inputs import steps_budget
from autotl.plugins import load_plugins
from autotl.study import build_trainer, prepare, refit_on_pool
from autotl.training import Trainer, TrialPlan

# test:images has 24 rows per class; a quarter is held out as test, validation takes 4 per
# class of the rest and --n-per-class 3 leaves 3 to train: a pool of 7 rows per class.
SETTINGS = dict(data="test:images", backbone="test:cnn", strategies=["full", "head-only"],
                heads=["linear"], n_per_class=3, test_fraction=0.25, min_steps=4,
                max_steps=40, epochs=8, eval_points=2, batch_size=16, image_size=32,
                prior="none", pretrained=False)
HEAD = TrialPlan("head-only", {}, "linear", {}, lr=3e-3, weight_decay=1e-4)
FULL = TrialPlan("full", {}, "linear", {}, lr=1e-3, weight_decay=1e-4)


@pytest.fixture(scope="module")
def plugins():  # noqa: ANN201
    return load_plugins(extra=[tiny_components])


def _trainer(plugins, tmp_path, **settings):  # noqa: ANN001, ANN202
    config = SearchConfig(**{**SETTINGS, "cache_dir": tmp_path / "cache", **settings})
    prep = prepare(config, plugins)
    return prep, build_trainer(prep, torch.device("cpu"))[1]


def test_folds_are_stratified_disjoint_and_every_row_is_scored_once_per_repeat() -> None:
    labels = np.array([0] * 7 + [1] * 9 + [2] * 6)
    scheme = scheme_for(6, seed=3)
    folds = make_folds(labels, scheme)
    assert (scheme.k, scheme.repeats) == (5, 2) and len(folds) == 10
    for fold in folds:
        assert not set(fold.train) & set(fold.val)
        assert sorted(fold.train + fold.val) == list(range(len(labels)))
        for c in range(3):  # stratified: each class spread evenly over the folds
            count = int((labels == c).sum())
            held = sum(1 for r in fold.val if labels[r] == c)
            assert count // 5 <= held <= -(-count // 5)
    for repeat in range(2):
        scored = Counter(r for f in folds if f.repeat == repeat for r in f.val)
        assert sorted(scored) == list(range(len(labels))) and set(scored.values()) == {1}
    assert [f.val for f in folds[:5]] != [f.val for f in folds[5:]]  # repeats reshuffle
    assert make_folds(labels, scheme) == folds  # seeded: every trial sees the same folds


@pytest.mark.parametrize(("smallest", "k", "repeats"),
                         [(2, 2, 3), (3, 3, 3), (4, 4, 3), (5, 5, 2), (19, 5, 2), (20, 5, 1)])
def test_k_and_repeats_follow_the_smallest_class(smallest: int, k: int, repeats: int) -> None:
    scheme = scheme_for(smallest, seed=0)
    assert (scheme.k, scheme.repeats) == (k, repeats)
    if smallest <= 4:  # leave one out per class: each fold holds out one row of that class
        labels = np.array([0] * smallest + [1] * (smallest + 3))
        for fold in make_folds(labels, scheme):
            assert sum(1 for r in fold.val if labels[r] == 0) == 1


def test_outcomes_go_back_to_their_rows_repeat_after_repeat() -> None:
    folds = [Fold(0, 0, (1, 2), (0, 3)), Fold(0, 1, (0, 3), (1, 2)),
             Fold(1, 0, (0, 1), (2, 3)), Fold(1, 1, (2, 3), (0, 1))]
    assert pool_outcomes(folds, ["10", "01", "11", "00"]) == "1010" + "0011"
    with pytest.raises(AssertionError, match="partition"):
        pool_outcomes(folds[:1] + folds[1:2] + folds[2:3] + [Fold(1, 1, (2, 3), (0, 0))],
                      ["10", "01", "11", "00"])


def test_a_small_validation_split_switches_to_folds_and_they_are_the_studys_identity(
        plugins, tmp_path) -> None:  # noqa: ANN001
    from autotl.study import build_request

    prep, _ = _trainer(plugins, tmp_path)
    assert len(prep.pool) == len(prep.train) + len(prep.val) == 21
    assert (prep.fold_scheme.k, prep.fold_scheme.repeats) == (5, 2)
    identity = build_request(prep.config, prep, plugins)["identity"]
    assert identity["folds"] == {"k": 5, "repeats": 2, "seed": 0}
    assert prep.split_keys["all"] not in (prep.split_keys["train"], prep.split_keys["val"])
    other = prepare(SearchConfig(**{**SETTINGS, "split_seed": 1}), plugins)
    assert other.split_keys["all"] != prep.split_keys["all"]
    single = prepare(SearchConfig(**{**SETTINGS, "fold_below": 0}), plugins)
    assert single.folds == [] and single.pool is None and "all" not in single.split_keys
    assert build_request(single.config, single, plugins)["identity"]["folds"] is None


def test_the_frozen_part_is_computed_once_for_every_fold(plugins, tmp_path) -> None:  # noqa: ANN001
    prep, trainer = _trainer(plugins, tmp_path)
    result = run_folds(trainer, prep.folds, HEAD, seed=0)
    # Inputs and pooled features of all 21 rows, once each; ten folds index into them.
    assert trainer.cache.stats.misses == 2
    assert result.state == "complete" and result.cached_depth == trainer.base.n_groups
    assert len(result.val_correct) == 21 * 2 and len(result.fold_accuracies) == 10
    assert result.val_accuracy == result.val_correct.count("1") / 42
    hits = trainer.cache.stats.hits
    run_folds(trainer, prep.folds, HEAD, seed=1)
    assert trainer.cache.stats.misses == 2 and trainer.cache.stats.hits > hits
    # Its operations are charged once too: each fold alone charges the frozen forward pass of
    # its training rows, the folds together that of the 21 rows once, beside every fold's own
    # training steps.
    per_row = trainer._prefix_flops_per_row(result.cached_depth)
    assert per_row > 0 and result.activation_flops == pytest.approx(21 * per_row)
    alone = [trainer.view(f.train, f.val).run(HEAD, seed=0) for f in prep.folds]
    assert all(r.activation_flops == pytest.approx(len(f.train) * per_row)
               for r, f in zip(alone, prep.folds, strict=True))
    assert result.train_flops == pytest.approx(
        sum(r.train_flops - r.activation_flops for r in alone) + 21 * per_row)


def test_folds_in_lockstep_train_exactly_as_each_fold_alone(
        plugins, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # Dropout draws from torch's global random state, which the folds take turns with.
    prep, trainer = _trainer(plugins, tmp_path, cache=False, heads=["linear", "mlp"])
    plan = TrialPlan("full", {}, "mlp", {"hidden": 16, "dropout": 0.5}, lr=3e-3,
                     weight_decay=1e-4)
    folds = make_folds(label_array(prep.pool), FoldScheme(k=2, repeats=1, seed=0))
    fold_trained = []  # each fold's final tensors, as its last checkpoint yields them
    original = Trainer.checkpoints

    def keep(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        for result in original(self, *args, **kwargs):
            if result.trained is not None:
                fold_trained.append(result.trained)
            yield result

    monkeypatch.setattr(Trainer, "checkpoints", keep)
    together = run_folds(trainer, folds, plan, seed=5)
    monkeypatch.undo()
    alone = [trainer.view(f.train, f.val).run(plan, seed=5) for f in folds]
    assert len(fold_trained) == 2
    for mine, own in zip(fold_trained, alone, strict=True):
        assert mine.keys() == own.trained.keys()
        assert all(torch.equal(mine[k], own.trained[k]) for k in own.trained)
    assert together.history != [] and together.trainable_params == alone[0].trainable_params
    assert together.fold_accuracies == [r.val_accuracy for r in alone]
    assert together.val_correct == pool_outcomes(folds, [r.val_correct for r in alone])
    assert together.steps == max(r.steps for r in alone)
    assert together.train_flops == pytest.approx(sum(r.train_flops for r in alone))


def test_folds_hold_one_model_without_the_pruner_and_no_gradients_while_waiting(
        plugins, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import gc
    import weakref

    prep, trainer = _trainer(plugins, tmp_path, cache=False)
    folds = make_folds(label_array(prep.pool), FoldScheme(k=3, repeats=2, seed=0))
    models: list[weakref.ref] = []
    alive_at_build: list[int] = []
    original = Trainer.build_model

    def build(self, plan):  # noqa: ANN001, ANN202
        gc.collect()
        alive = [ref() for ref in models if ref() is not None]
        alive_at_build.append(len(alive))
        # a fold waiting at a checkpoint keeps its weights and optimizer state, not gradients
        assert all(p.grad is None for m in alive for p in m.parameters())
        model, depth = original(self, plan)
        models.append(weakref.ref(model))
        return model, depth

    monkeypatch.setattr(Trainer, "build_model", build)
    one_by_one = run_folds(trainer, folds, FULL, seed=3, between=False)
    assert alive_at_build == [0] * 6  # each fold's model was freed before the next was built
    gc.collect()
    assert all(ref() is None for ref in models)
    # the pruner reads every fold at each checkpoint, so there the folds train side by side
    alive_at_build.clear()
    side_by_side = run_folds(trainer, folds, FULL, seed=3, should_stop=lambda acc, i: False)
    assert alive_at_build == [0, 1, 2, 3, 4, 5]
    assert one_by_one.val_correct == side_by_side.val_correct
    assert one_by_one.fold_accuracies == side_by_side.fold_accuracies


def test_the_pruner_sees_the_mean_across_folds_at_each_checkpoint(
        plugins, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    prep, trainer = _trainer(plugins, tmp_path)

    def outcomes(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return self.rows["val"] % 3 == 0  # right on every third row of the pool

    monkeypatch.setattr(Trainer, "outcomes", outcomes)
    seen = []
    result = run_folds(trainer, prep.folds, HEAD, seed=0,
                       should_stop=lambda acc, i: seen.append((i, acc)) or False)
    assert seen == [(0, pytest.approx(7 / 21))]  # eval_points 2: asked before the last only
    assert result.val_correct == "100" * 7 * 2
    stopped = run_folds(trainer, prep.folds, HEAD, seed=0, should_stop=lambda acc, i: True)
    assert stopped.state == "pruned" and stopped.val_correct is None


def test_the_refit_trains_on_every_row_and_no_test_row(plugins, tmp_path,  # noqa: ANN001
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    prep, trainer = _trainer(plugins, tmp_path)
    seen = {}
    original = Trainer._train_batches

    def spy(self, acts, seed):  # noqa: ANN001, ANN202
        seen["rows"] = self.rows["train"].tolist()
        seen["labels"] = self.labels["train"].tolist()
        return original(self, acts, seed)

    monkeypatch.setattr(Trainer, "_train_batches", spy)
    result = refit_on_pool(trainer, FULL, seed=0)
    assert seen["rows"] == list(range(21))
    assert seen["labels"] == label_array(prep.pool).tolist()
    assert result.steps == steps_budget(21, 16, 8, 4, 40) == 11  # the budget for 21 rows
    assert result.steps > trainer.view(prep.folds[0].train, prep.folds[0].val).steps  # a fold's is smaller
    assert result.trained

    def digest(split) -> set[str]:  # noqa: ANN001
        return {hashlib.sha256(np.asarray(r["image"]).tobytes()).hexdigest() for r in split}

    assert digest(prep.pool) == digest(prep.train) | digest(prep.val)
    assert not digest(prep.pool) & digest(prep.test)


def ids(split) -> list[str]:  # noqa: ANN001
    """Each row by content (image pixels and label), sorted."""
    return sorted(hashlib.md5(np.asarray(row["image"]).tobytes() + bytes([row["label"]]))
                  .hexdigest() for row in split)


def test_sample_only_sees_exactly_the_rows_a_fixed_config_trains_on_and_nothing_else(
        plugins) -> None:  # noqa: ANN001
    """--sample-only K: the search's whole data is the K rows per class that the simulated
    protocol trains on at the same seed (so a benchmark can pair them); validation and folds
    come out of them, and the study's identity and cache keys tell it apart."""
    from autotl.study import build_request

    simulated = prepare(SearchConfig(**{**SETTINGS, "n_per_class": 5}), plugins)
    real = prepare(SearchConfig(**{**SETTINGS, "n_per_class": 5, "sample_only": True}),
                   plugins)
    assert ids(real.pool) == ids(simulated.train)  # the same 5 rows per class, and only them
    assert Counter(label_array(real.val).tolist()) == {c: 1 for c in range(3)}
    assert Counter(label_array(real.train).tolist()) == {c: 4 for c in range(3)}
    assert real.fold_scheme is not None and len(real.pool) == 15
    assert ids(real.test) == ids(simulated.test)  # the test split is untouched
    assert real.source_fingerprint == simulated.source_fingerprint
    assert real.data.fingerprint != simulated.data.fingerprint
    assert not set(real.split_keys.values()) & set(simulated.split_keys.values())
    assert build_request(real.config, real, plugins)["identity"]["sample_only"] is True
    # One row per class left: nothing to measure, the prior decides.
    one = prepare(SearchConfig(**{**SETTINGS, "n_per_class": 1, "sample_only": True}),
                  plugins)
    assert one.prior_only and len(one.train) == 3


def test_sample_only_is_refused_without_n_per_class_and_with_sizes() -> None:
    from autotl.errors import ConfigError

    with pytest.raises(ConfigError, match="sample_only needs n_per_class"):
        SearchConfig(**{**SETTINGS, "n_per_class": None, "sample_only": True})
    with pytest.raises(ConfigError, match="--sizes with --sample-only"):
        SearchConfig(**{**SETTINGS, "sample_only": True, "sizes": ["2", "3"]})
