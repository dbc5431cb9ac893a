"""The activation cache: exact (a cached trial trains like an uncached one), keyed by everything
that changes what it stores, bounded with LRU eviction, shared across studies, and robust to a
damaged cache directory. Tiny models on CPU; a trial is a few optimizer steps."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import tiny_components
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import autotl
from autotl.cache import ENTRY_FORMAT, ActivationCache
from autotl.config import SearchConfig
from autotl.plugins import Plugins, load_plugins
from autotl.study import Prepared, configured_backbone, prepare, search
from autotl.testing import tiny_cnn
from autotl.training import Trainer, TrialPlan, TrialResult

FAST = dict(min_steps=4, max_steps=4, eval_points=2, batch_size=16, pretrained=False,
            fold_below=0)  # one split: these tests are about its cache entries
DATA = {
    "cnn": dict(data="test:images", backbone="test:cnn", image_size=32),
    "bert": dict(data="test:texts", backbone="test:bert", max_length=32),
}
BIG = 1 << 30


# -- building trials as a study does ---------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy machine OpenMP's spinning threads
    make a 4-step trial take seconds instead of a tenth of one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return load_plugins(extra=[tiny_components])


def _prepare(plugins: Plugins, model: str = "cnn", **settings: Any) -> Prepared:
    return prepare(SearchConfig(**{**DATA[model], **FAST, **settings}), plugins)


def _backbone(prep: Prepared) -> Any:
    """The study's backbone: loaded once per process, resized as ``Session`` does."""
    return configured_backbone(prep.backbone_spec, prep.config)


def _trainer(prep: Prepared, cache: ActivationCache | None, backbone: Any = None,
             **config_changes: Any) -> Trainer:
    return Trainer(backbone or _backbone(prep), prep.train, prep.val,
                   num_classes=len(prep.data.class_names),
                   config=prep.config.replace(**config_changes), strategies=prep.strategies,
                   heads=prep.heads, split_keys=prep.split_keys, cache=cache,
                   device=torch.device("cpu"))


class RecordingCache(ActivationCache):
    """Records every key asked for, by what it holds (``"train inputs"``, …)."""

    def __init__(self, directory: Path | None, max_bytes: int) -> None:
        super().__init__(directory, max_bytes)
        self.keys: dict[str, str] = {}

    def fetch(self, key, compute, what):  # noqa: ANN001, ANN201
        self.keys[what] = key
        return super().fetch(key, compute, what)


def _plan(strategy: str, backbone: Any, head: str = "linear", **head_params: Any) -> TrialPlan:
    params = {
        "head-only": {}, "full": {},
        "subset": {"freeze_depth": backbone.n_groups // 2},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.1},  # dropout: the RNG must line up too
    }[strategy]
    lr = {"head-only": 1e-2, "full": 1e-3, "subset": 2e-3, "lora": 3e-3}[strategy]
    return TrialPlan(strategy, params, head, head_params, lr, 1e-4)


def _assert_same_training(a: TrialResult, b: TrialResult) -> None:
    """The same accuracy at every checkpoint and the same trained weights, to rounding.

    Everything that trained is compared, not only the head: a bias that a following BatchNorm
    cancels gets a gradient of pure rounding noise, which Adam turns into lr-sized steps, so
    the cached activations must round exactly as the trial's own forward pass does.
    """
    assert a.state == b.state == "complete"
    assert a.val_accuracy == pytest.approx(b.val_accuracy, abs=1e-9)
    assert [step for step, _ in a.history] == [step for step, _ in b.history]
    assert [acc for _, acc in a.history] == pytest.approx([acc for _, acc in b.history],
                                                          abs=1e-9)
    assert a.trained is not None and b.trained is not None
    assert set(a.trained) == set(b.trained)
    assert any(name.startswith("head.") for name in a.trained)
    for name, tensor in a.trained.items():
        torch.testing.assert_close(tensor, b.trained[name], atol=1e-4, rtol=0, msg=name)


# -- exactness -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["cnn", "bert"])
@pytest.mark.parametrize("strategy", ["head-only", "subset", "full", "lora"])
def test_a_cached_trial_trains_like_an_uncached_one(plugins: Plugins, tmp_path: Path, model: str,
                                                    strategy: str) -> None:
    prep = _prepare(plugins, model)
    backbone = _backbone(prep)
    plan = _plan(strategy, backbone)
    cache = ActivationCache(tmp_path / "cache", BIG)
    cached = _trainer(prep, cache, backbone).run(plan, seed=3)
    plain = _trainer(prep, None, backbone).run(plan, seed=3)

    depth = prep.strategies[strategy].frozen_depth(plan.strategy_params, backbone)
    assert cached.cached_depth == depth == cached.frozen_depth
    assert plain.cached_depth is None
    if strategy == "head-only":
        assert depth == backbone.n_groups
    elif strategy == "subset":
        assert 0 < depth < backbone.n_groups  # a real layer split, verified against the model
    assert cache.stats.misses > 0 and cache.stats.bypassed == 0
    _assert_same_training(cached, plain)


def test_dropout_in_the_trained_part_sees_the_same_masks_cold_warm_and_uncached(
        plugins: Plugins, tmp_path: Path) -> None:
    """Streaming images draws a DataLoader seed from torch's RNG; computing or reading the
    cache must not shift the dropout masks of the trial against an uncached one."""
    prep = _prepare(plugins)
    backbone = _backbone(prep)
    plan = _plan("head-only", backbone, head="mlp", hidden=64, dropout=0.5)
    cache = ActivationCache(tmp_path / "cache", BIG)
    cold = _trainer(prep, cache, backbone).run(plan, seed=5)
    misses = cache.stats.misses
    warm = _trainer(prep, cache, backbone).run(plan, seed=5)
    plain = _trainer(prep, None, backbone).run(plan, seed=5)
    assert cache.stats.misses == misses and cache.stats.hits > 0
    assert plain.cached_depth is None
    _assert_same_training(cold, plain)
    _assert_same_training(warm, plain)


# -- keys ------------------------------------------------------------------------------------------


def _keys(prep: Prepared, tmp_path: Path, backbone: Any = None, strategy: str = "head-only",
          **config_changes: Any) -> dict[str, str]:
    # A fresh directory each time: every key is computed (inputs included), none is a hit.
    cache = RecordingCache(tmp_path / f"keys-{len(list(tmp_path.glob('keys-*')))}", BIG)
    backbone = backbone or _backbone(prep)
    _trainer(prep, cache, backbone, **config_changes).run(_plan(strategy, backbone), seed=0)
    assert set(cache.keys) >= {"train inputs", "val inputs"}
    return cache.keys


def test_the_key_does_not_change_for_the_same_data_weights_and_preprocessing(
        plugins: Plugins, tmp_path: Path) -> None:
    keys = _keys(_prepare(plugins), tmp_path)
    assert len(set(keys.values())) == len(keys) == 4  # inputs and features, train and val
    again = _keys(_prepare(plugins), tmp_path)  # data loaded again, a new trainer
    assert again == keys
    # What a trial trains, and how long, is not part of what the frozen part computes.
    shorter_run = _prepare(plugins, batch_size=8, eval_points=1, min_steps=2, max_steps=2)
    other_run = _keys(shorter_run, tmp_path, strategies=["head-only", "subset"])
    assert other_run == keys
    same_weights = _backbone(_prepare(plugins)).copy()
    assert _keys(_prepare(plugins), tmp_path, backbone=same_weights) == keys


@pytest.mark.parametrize("change", ["n_per_class", "seed", "val_fraction", "content"])
def test_the_key_changes_with_the_data(plugins: Plugins, tmp_path: Path, change: str) -> None:
    keys = _keys(_prepare(plugins), tmp_path)
    if change == "content":
        changed_plugins = load_plugins(extra=[("changed", _ChangedImages())])
        prep = _prepare(changed_plugins)
    else:
        value = {"n_per_class": 10, "seed": 1, "val_fraction": 0.3}[change]
        prep = _prepare(plugins, **{change: value})
    changed = _keys(prep, tmp_path)
    if change == "n_per_class":  # validation is drawn before subsampling: every size shares it
        train = {k: v for k, v in keys.items() if k.startswith("train")}
        assert set(changed[k] for k in train).isdisjoint(train.values())
        assert {k: v for k, v in changed.items() if k.startswith("val")} == {
            k: v for k, v in keys.items() if k.startswith("val")}
    else:
        assert set(changed.values()).isdisjoint(keys.values())


class _ChangedImages:
    """``test:images`` with one pixel of one image changed, beside the tiny backbones."""

    @autotl.hookimpl
    def autotl_register_backbones(self, registry):  # noqa: ANN001, ANN201
        tiny_components.autotl_register_backbones(registry)

    @autotl.hookimpl
    def autotl_register_datasets(self, registry):  # noqa: ANN001, ANN201
        registry.add(autotl.DatasetSpec(name="test:images", modality="image",
                                        load=_changed_images))


def _changed_images():  # noqa: ANN202
    import datasets
    import numpy as np
    from PIL import Image

    train = tiny_components._images()["train"]
    images = list(train["image"])
    first = np.array(images[0])
    first[0, 0] += 1
    images[0] = Image.fromarray(first, mode="L")
    changed = datasets.Dataset.from_dict({"image": images, "label": train["label"]},
                                         features=train.features)
    return datasets.DatasetDict({"train": changed})


def test_the_key_changes_with_the_weights(plugins: Plugins, tmp_path: Path) -> None:
    prep = _prepare(plugins)
    backbone = _backbone(prep)
    keys = _keys(prep, tmp_path, backbone=backbone)
    renamed = _keys(prep, tmp_path, backbone=replace(backbone.copy(), weights_id="other"))
    assert set(renamed.values()).isdisjoint(keys.values())
    # Weights saved again under the same weights_id (a local folder, a plugin update): the
    # same name, other weights, other keys. The same weights rebuilt: the same keys.
    rebuilt = replace(tiny_cnn(), preprocessing=backbone.preprocessing)
    assert rebuilt.weights_id == backbone.weights_id
    assert _keys(prep, tmp_path, backbone=rebuilt) == keys
    with torch.no_grad():
        next(rebuilt.module.parameters()).add_(1e-3)
    other_weights = _keys(prep, tmp_path, backbone=rebuilt)
    assert set(other_weights.values()).isdisjoint(keys.values())


def test_the_key_changes_with_the_preprocessing(plugins: Plugins, tmp_path: Path) -> None:
    keys = _keys(_prepare(plugins), tmp_path)
    resized = _keys(_prepare(plugins, image_size=40), tmp_path)
    assert set(resized.values()).isdisjoint(keys.values())
    text = _keys(_prepare(plugins, "bert"), tmp_path)
    shorter = _keys(_prepare(plugins, "bert", max_length=16), tmp_path)
    assert set(shorter.values()).isdisjoint(text.values())


def test_each_depth_has_its_own_key(plugins: Plugins, tmp_path: Path) -> None:
    prep = _prepare(plugins)
    head_only = _keys(prep, tmp_path)
    subset = _keys(prep, tmp_path, strategy="subset")
    assert subset["train inputs"] == head_only["train inputs"]
    by_depth = {what: key for what, key in {**head_only, **subset}.items()
                if "activations" in what}
    assert len(by_depth) == len(set(by_depth.values())) == 4


# -- the byte bound and LRU eviction ---------------------------------------------------------------

ENTRY = 1000  # float32 elements per test entry: 4000 bytes of data, under 4128 on disk


def _tree(value: float, n: int = ENTRY) -> torch.Tensor:
    return torch.full((n,), float(value), dtype=torch.float32)


class Counter:
    """A ``compute`` for ActivationCache.fetch that counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, key: str, value: float, n: int = ENTRY) -> Any:
        def compute(budget: int) -> tuple[torch.Tensor, float] | None:
            self.calls.append(key)
            tree = _tree(value, n)
            return None if tree.numel() * 4 > budget else (tree, 0.5)
        return compute


def test_disk_eviction_drops_the_least_recently_used_entry(tmp_path: Path) -> None:
    one = 4 * ENTRY + 128
    cache = ActivationCache(tmp_path, max_bytes=3 * one + 50)
    compute = Counter()
    for i, key in enumerate("abc"):
        cache.fetch(key, compute(key, i), key)
    assert cache.fetch("a", compute("a", 0), "a")[0][0] == 0  # a is used again: b is oldest
    assert compute.calls == ["a", "b", "c"]
    cache.fetch("d", compute("d", 3), "d")
    assert cache.disk_bytes() <= cache.max_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c", "d"]
    # A new process (empty memory) finds a, c and d on disk, and recomputes b.
    fresh = ActivationCache(tmp_path, max_bytes=3 * one + 50)
    for key, value in (("a", 0), ("c", 2), ("d", 3)):
        tree, seconds = fresh.fetch(key, compute(key, -1), key)
        assert torch.equal(tree, _tree(value)) and seconds == 0.5
    assert fresh.stats.hits == 3 and fresh.stats.saved_seconds == pytest.approx(1.5)
    fresh.fetch("b", compute("b", 1), "b")
    assert compute.calls == ["a", "b", "c", "d", "b"]


def test_disk_bytes_never_exceed_the_budget(tmp_path: Path) -> None:
    budget = 20_000
    cache = ActivationCache(tmp_path, max_bytes=budget)
    compute = Counter()
    sizes = [1000, 3000, 200, 4900, 2500, 10, 4000, 1234, 4999, 700] * 2
    for i, n in enumerate(sizes):
        cache.fetch(f"k{i}", compute(f"k{i}", i, n), f"entry {i}")
        assert cache.disk_bytes() <= budget
    # the newest entry is always kept
    assert (tmp_path / f"k{len(sizes) - 1}" / "meta.json").is_file()


def test_an_entry_another_process_stored_first_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes compute the same entry; the other renames its folder into place between
    this one's existence check and its rename (which then fails with ENOTEMPTY)."""
    mine, other = ActivationCache(tmp_path, BIG), ActivationCache(tmp_path, BIG)
    evict = ActivationCache._evict

    def other_gets_there_first(self, room_for):  # noqa: ANN001, ANN202
        other._put("a", _tree(1.0), 0.5)
        return evict(self, room_for)

    monkeypatch.setattr(mine, "_evict", other_gets_there_first.__get__(mine))
    tree, _ = mine.fetch("a", Counter()("a", 1.0), "a")
    assert torch.equal(tree, _tree(1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary folder left behind
    fresh = ActivationCache(tmp_path, BIG)
    assert torch.equal(fresh.fetch("a", Counter()("a", -1.0), "a")[0], _tree(1.0))


def _put_the_same_keys(directory: Path, barrier: Any) -> None:
    cache = ActivationCache(directory, BIG)
    barrier.wait()
    for i in range(30):
        cache._put(f"k{i}", _tree(float(i)), 0.1)


def test_processes_storing_the_same_entries_at_once_all_succeed(tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_put_the_same_keys, args=(tmp_path, barrier))
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"k{i}" for i in range(30))
    fresh = ActivationCache(tmp_path, BIG)
    for i in range(30):
        assert torch.equal(fresh.fetch(f"k{i}", Counter()(f"k{i}", -1.0), "")[0],
                           _tree(float(i)))


def test_an_entry_that_fits_the_data_budget_but_not_the_disk_is_not_written(
        tmp_path: Path) -> None:
    cache = ActivationCache(tmp_path, max_bytes=4 * ENTRY)  # the file's header does not fit
    compute = Counter()
    tree, _ = cache.fetch("a", compute("a", 1.0), "a")
    assert torch.equal(tree, _tree(1.0))
    assert cache.disk_bytes() <= cache.max_bytes
    assert cache.fetch("a", compute("a", 1.0), "a") is not None  # still served from memory
    assert compute.calls == ["a"]


def test_memory_eviction_drops_the_least_recently_used_entry() -> None:
    cache = ActivationCache(None, max_bytes=3 * 4 * ENTRY)
    compute = Counter()
    for i, key in enumerate("abc"):
        cache.fetch(key, compute(key, i), key)
    cache.fetch("a", compute("a", 0), "a")
    cache.fetch("d", compute("d", 3), "d")
    assert sum(t.numel() * 4 for t, _ in cache._memory.values()) <= cache.max_bytes
    assert list(cache._memory) == ["c", "a", "d"]
    for key in "acd":
        cache.fetch(key, compute(key, -1), key)
    assert compute.calls == ["a", "b", "c", "d"]
    cache.fetch("b", compute("b", 1), "b")
    assert compute.calls[-1] == "b"
    assert cache.stats.hits == 4 and cache.stats.misses == 5


def test_an_over_budget_compute_is_counted_as_bypassed() -> None:
    cache = ActivationCache(None, max_bytes=100)
    assert cache.fetch("a", Counter()("a", 1.0), "big things") is None
    assert cache.stats.bypassed == 1 and cache.stats.misses == 0


# -- falling back to training without the cache ----------------------------------------------------


@pytest.mark.parametrize("strategy", ["head-only", "subset"])
def test_over_budget_activations_fall_back_to_normal_training(plugins: Plugins, tmp_path: Path,
                                                              strategy: str) -> None:
    prep = _prepare(plugins)
    backbone = _backbone(prep)
    plan = _plan(strategy, backbone)
    cache = ActivationCache(tmp_path / "cache", max_bytes=1000)
    result = _trainer(prep, cache, backbone).run(plan, seed=1)
    assert result.cached_depth is None
    assert cache.stats.bypassed > 0 and cache.stats.misses == 0
    assert cache.disk_bytes() == 0
    _assert_same_training(result, _trainer(prep, None, backbone).run(plan, seed=1))


def test_activations_over_budget_fall_back_even_when_the_inputs_fit(plugins: Plugins,
                                                                    tmp_path: Path) -> None:
    prep = _prepare(plugins)
    backbone = _backbone(prep)
    plan = TrialPlan("subset", {"freeze_depth": 1}, "linear", {}, 2e-3, 1e-4)
    inputs = len(prep.train) * 3 * 32 * 32 * 4  # the stem's output is twice as large
    cache = ActivationCache(tmp_path / "cache", max_bytes=inputs + 4096)
    result = _trainer(prep, cache, backbone).run(plan, seed=1)
    assert result.cached_depth is None and result.state == "complete"
    assert cache.stats.bypassed > 0
    assert cache.disk_bytes() <= cache.max_bytes


def test_random_augmentation_bypasses_the_cache(plugins: Plugins, tmp_path: Path) -> None:
    prep = _prepare(plugins, augment=True)
    backbone = _backbone(prep)
    cache = RecordingCache(tmp_path / "cache", BIG)
    result = _trainer(prep, cache, backbone).run(_plan("head-only", backbone), seed=0)
    assert result.state == "complete" and result.val_accuracy is not None
    assert result.cached_depth is None
    assert cache.keys == {}
    assert not (tmp_path / "cache").exists()


def test_cache_off_in_the_config_bypasses_the_cache(plugins: Plugins, tmp_path: Path) -> None:
    prep = _prepare(plugins, cache=False)
    cache = RecordingCache(tmp_path / "cache", BIG)
    backbone = _backbone(prep)
    result = _trainer(prep, cache, backbone).run(_plan("head-only", backbone), seed=0)
    assert result.cached_depth is None and cache.keys == {}


# -- reuse across trainers and studies -------------------------------------------------------------


def test_a_second_trainer_reuses_the_disk_entries(plugins: Plugins, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    prep = _prepare(plugins)
    backbone = _backbone(prep)
    plans = [_plan("head-only", backbone), _plan("subset", backbone)]
    first_cache = ActivationCache(tmp_path / "cache", BIG)
    first = [_trainer(prep, first_cache, backbone).run(p, seed=2) for p in plans]
    assert first_cache.stats.misses == 6  # inputs, features and the middle, train and val

    def no_recomputation(*args: Any) -> None:
        raise AssertionError("recomputed activations that were on disk")

    monkeypatch.setattr(Trainer, "_compute", no_recomputation)
    second_cache = ActivationCache(tmp_path / "cache", BIG)  # a new study: nothing in memory
    second = [_trainer(_prepare(plugins), second_cache, backbone).run(p, seed=2) for p in plans]
    assert second_cache.stats.hits > 0
    assert second_cache.stats.misses == 0 and second_cache.stats.compute_seconds == 0
    assert second_cache.stats.saved_seconds > 0
    for a, b in zip(first, second, strict=True):
        assert a.cached_depth == b.cached_depth is not None
        _assert_same_training(a, b)


def test_a_second_study_reuses_the_cache_directory(plugins: Plugins, tmp_path: Path) -> None:
    settings = dict(DATA["cnn"], **FAST, strategies=["head-only", "subset"], trials=2,
                    cache_dir=tmp_path / "cache")
    first = search(plugins=plugins, progress=False, out=tmp_path / "one", **settings)
    second = search(plugins=plugins, progress=False, out=tmp_path / "two", **settings)
    assert first.cache["misses"] > 0
    assert second.cache["hits"] > 0 and second.cache["misses"] == 0


# -- the on-disk format ----------------------------------------------------------------------------


TREES = {
    "image inputs": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2),
    "tokens": {"input_ids": torch.tensor([[2, 7, 3, 0]]), "attention_mask":
               torch.tensor([[1, 1, 1, 0]]), "token_type_ids": torch.zeros(1, 4, dtype=torch.long)},
    "hidden states and mask": (torch.randn(1, 4, 8).to(torch.bfloat16), torch.ones(1, 4)),
}


def _assert_same_tree(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    if isinstance(want, torch.Tensor):
        assert got.dtype == want.dtype and torch.equal(got, want)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            _assert_same_tree(got[key], want[key])
    else:
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_same_tree(g, w)


@pytest.mark.parametrize("what", sorted(TREES))
def test_an_entry_is_one_safetensors_file_that_keeps_the_tree(tmp_path: Path, what: str) -> None:
    tree = TREES[what]
    ActivationCache(tmp_path, BIG).fetch("k", lambda budget: (tree, 0.25), what)
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["meta.json",
                                                                  "tree.safetensors"]
    with safe_open(tmp_path / "k" / "tree.safetensors", framework="pt") as f:
        assert "structure" in f.metadata()
    fresh = ActivationCache(tmp_path, BIG)
    got, seconds = fresh.fetch("k", lambda budget: pytest.fail("recomputed"), what)
    assert fresh.stats.hits == 1 and seconds == 0.25
    _assert_same_tree(got, tree)


def test_an_entry_in_an_older_format_is_recomputed_not_misread(tmp_path: Path) -> None:
    """The npy-plus-JSON entries of format 1 hold the same key's data another way: a new
    autotl must not take them for its own."""
    import numpy as np

    old = tmp_path / "k"
    old.mkdir()
    np.save(old / "leaf0.npy", np.full(3, 7.0, dtype=np.float32))
    (old / "meta.json").write_text(json.dumps({"structure": {"leaf": 0}, "bytes": 140,
                                               "compute_seconds": 0.5}))
    compute = Counter()
    cache = ActivationCache(tmp_path, BIG)
    tree, _ = cache.fetch("k", compute("k", 1.0, 3), "k")
    assert compute.calls == ["k"] and torch.equal(tree, _tree(1.0, 3))
    assert json.loads((old / "meta.json").read_text())["format"] == ENTRY_FORMAT
    assert not (old / "leaf0.npy").exists()


# -- a damaged cache directory ---------------------------------------------------------------------


def _damage(entry: Path, how: str) -> None:
    data = entry / "tree.safetensors"
    if how == "empty file":
        data.write_bytes(b"")
    elif how == "truncated file":
        data.write_bytes(data.read_bytes()[:200])
    elif how == "missing file":
        data.unlink()
    elif how == "garbage file":
        data.write_bytes(b"not a safetensors file at all" * 10)
    elif how == "bad meta":
        (entry / "meta.json").write_text("{not json")
    elif how == "meta without its seconds":
        (entry / "meta.json").write_text(json.dumps({"format": ENTRY_FORMAT, "bytes": 1}))
    elif how == "tree of the wrong shape":
        save_file({"0": torch.zeros(3)}, data, metadata={"structure": "[1]"})
    elif how == "tree without its structure":
        save_file({"0": torch.zeros(3)}, data)


DAMAGE = ["empty file", "truncated file", "missing file", "garbage file", "bad meta",
          "meta without its seconds", "tree of the wrong shape", "tree without its structure"]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_entry_is_dropped_and_recomputed(tmp_path: Path, how: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    compute = Counter()
    ActivationCache(tmp_path, BIG).fetch("a", compute("a", 1.0), "a")
    _damage(tmp_path / "a", how)
    cache = ActivationCache(tmp_path, BIG)
    with caplog.at_level(logging.WARNING, logger="autotl.cache"):
        tree, _ = cache.fetch("a", compute("a", 1.0), "a")
    assert "dropping unreadable entry" in caplog.text
    assert torch.equal(tree, _tree(1.0))
    assert compute.calls == ["a", "a"] and cache.stats.misses == 1
    # stored again, whole
    tree, _ = ActivationCache(tmp_path, BIG).fetch("a", compute("a", -1.0), "a")
    assert torch.equal(tree, _tree(1.0)) and compute.calls == ["a", "a"]


def test_a_trial_recomputes_a_damaged_entry(plugins: Plugins, tmp_path: Path) -> None:
    prep = _prepare(plugins)
    backbone = _backbone(prep)
    plan = _plan("head-only", backbone)
    first_cache = RecordingCache(tmp_path / "cache", BIG)
    first = _trainer(prep, first_cache, backbone).run(plan, seed=4)
    damaged = first_cache.keys[f"train activations at depth {backbone.n_groups}"]
    _damage(tmp_path / "cache" / damaged, "empty file")
    cache = ActivationCache(tmp_path / "cache", BIG)
    again = _trainer(prep, cache, backbone).run(plan, seed=4)
    assert cache.stats.misses == 1 and cache.stats.hits >= 2
    assert again.cached_depth == first.cached_depth
    _assert_same_training(again, first)


@pytest.mark.parametrize("inner_cached", [False, True])
def test_compute_time_counts_each_piece_of_work_once(tmp_path: Path, inner_cached: bool) -> None:
    """An entry built from another entry (activations from cached inputs) costs both — a later
    hit saves both — but the study's compute time must count the inner work only once."""
    cache = ActivationCache(tmp_path, BIG)

    def inner(budget: int) -> tuple[torch.Tensor, float]:
        return _tree(1.0), 1.0

    def outer(budget: int) -> tuple[torch.Tensor, float]:
        _, inner_seconds = cache.fetch("inner", inner, "inputs")
        return _tree(2.0), inner_seconds + 2.0  # 2 s of its own work

    if inner_cached:
        cache.fetch("inner", inner, "inputs")
    assert cache.fetch("outer", outer, "activations")[1] == 3.0
    assert cache.stats.compute_seconds == 3.0  # 1 s inputs + 2 s activations, never 4
    assert cache.stats.saved_seconds == (1.0 if inner_cached else 0.0)
    cache.fetch("outer", outer, "activations")
    assert cache.stats.saved_seconds == (1.0 if inner_cached else 0.0) + 3.0
