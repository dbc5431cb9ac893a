"""One trial: what its value is, what it times, what it keeps; and faults inside it: a loss that is not finite ends it as pruned with the reason, device
out-of-memory is retried once at half the batch with two accumulation steps, and the training
loop reads device values only at checkpoints. Tiny models on CPU, through the fault-injection
point ``AUTOTL_INJECT_FAULT``."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import tiny_components
import torch

from autotl.config import SearchConfig
from autotl.plugins import Plugins, load_plugins
from autotl.study import build_trainer, configured_backbone, prepare, search
from autotl.training import FAULT_ENV, OutOfMemory, Trainer, TrialPlan

FAST = dict(data="test:images", backbone="test:cnn", image_size=32, batch_size=16,
            pretrained=False, prior="none")


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return load_plugins(extra=[tiny_components])


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trainer(plugins: Plugins, **settings: Any) -> Trainer:
    config = SearchConfig(**{**FAST, "min_steps": 12, "max_steps": 12, "eval_points": 2,
                             **settings})
    prep = prepare(config, plugins)
    return Trainer(configured_backbone(prep.backbone_spec, prep.config), prep.train, prep.val,
                   num_classes=len(prep.data.class_names), config=prep.config,
                   strategies=prep.strategies, heads=prep.heads, split_keys=prep.split_keys,
                   cache=None, device=torch.device("cpu"))


def _plan(strategy: str = "head-only", lr: float = 1e-2) -> TrialPlan:
    return TrialPlan(strategy, {}, "linear", {}, lr, 1e-4)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


# -- loss that is not finite -----------------------------------------------------------------------


def test_a_nan_loss_ends_the_trial_as_pruned_at_the_next_checkpoint(
        plugins: Plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "nan@2")
    result = _trainer(plugins).run(_plan(), seed=0)
    assert result.state == "pruned"
    # Found where it happened (step 2), though only checked at the first checkpoint (step 6),
    # which is not evaluated: the weights are NaN by then.
    assert result.error is not None and "NaN or infinite at step 2" in result.error
    assert result.history == []


def test_a_diverging_learning_rate_is_caught_without_injection(plugins: Plugins) -> None:
    result = _trainer(plugins).run(_plan("full", lr=1e12), seed=0)
    assert result.state == "pruned"
    assert "NaN or infinite" in (result.error or "")


def test_the_loop_reads_device_values_only_at_checkpoints(
        plugins: Plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a value back (``.item()``, ``int()``, ``float()``, ``bool()``) makes the host
    wait for the GPU; the training loop may do it once per checkpoint, never per step."""
    reads: list[int] = []
    for name in ("item", "__int__", "__float__", "__bool__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):  # noqa: ANN001, ANN202
            if sys._getframe(1).f_code.co_name == "_train":
                reads.append(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    counts = []
    for steps in (12, 24):
        reads.clear()
        result = _trainer(plugins, min_steps=steps, max_steps=steps).run(_plan(), seed=0)
        assert result.state == "complete" and result.steps == steps
        counts.append(len(reads))
    # At each of the two checkpoints: the finiteness flag and the accuracy; none per step.
    assert counts[0] == counts[1] <= 2 * 2


# -- out of memory ---------------------------------------------------------------------------------


def test_out_of_memory_is_retried_at_half_batch_with_the_same_effective_batch(
        plugins: Plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(plugins)
    plain = trainer.run(_plan(), seed=3)
    monkeypatch.setenv(FAULT_ENV, "oom@3")
    retried = trainer.run(_plan(), seed=3)
    assert plain.accumulation_steps == 1 and retried.accumulation_steps == 2
    assert retried.state == "complete"
    # head-only on a linear head: two half batches average to the same gradient, so the
    # retried trial trains like the plain one, to rounding.
    assert [s for s, _ in retried.history] == [s for s, _ in plain.history]
    assert [a for _, a in retried.history] == pytest.approx([a for _, a in plain.history])
    assert plain.trained is not None and retried.trained is not None
    for name, tensor in plain.trained.items():
        torch.testing.assert_close(retried.trained[name], tensor, atol=1e-5, rtol=1e-4)


def test_out_of_memory_twice_fails_the_trial_with_what_to_do(
        plugins: Plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "oom-always@3")
    with pytest.raises(OutOfMemory, match=r"batch size 16 and again at 8 × 2 accumulation "
                                          r"steps .*lower --batch-size"):
        _trainer(plugins).run(_plan(), seed=0)


# -- in a study -------------------------------------------------------------------------------------


def _search(plugins: Plugins, out: Path, **settings: Any) -> Any:
    return search(plugins=plugins, progress=False, out=out, cache_dir=out.parent / "cache",
                  strategies=["head-only"], trials=2, min_steps=4, max_steps=4,
                  eval_points=2, **{**FAST, **settings})


def test_faults_are_recorded_on_the_trial_and_the_study_goes_on(
        plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "nan@1")
    out = tmp_path / "nan"
    _search(plugins, out)
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["pruned"] * 2
    assert all("loss became NaN or infinite at step 1" in r["error"] for r in rows)
    report = (out / "report.md").read_text()
    assert "## Failed or stopped trials" in report and "NaN or infinite at step 1" in report

    monkeypatch.setenv(FAULT_ENV, "oom@2")
    out = tmp_path / "oom"
    rec = _search(plugins, out)
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["complete"] * 2
    assert [r["accumulation_steps"] for r in rows] == ["2"] * 2
    assert rec.recommended is not None

    monkeypatch.setenv(FAULT_ENV, "oom-always@2")
    out = tmp_path / "oom-always"
    _search(plugins, out)
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["fail"] * 2  # each recorded; the study went on
    assert all("out of device memory at batch size 16 and again" in r["error"] for r in rows)
    study = optuna.load_study(study_name=rec.study,
                              storage=f"sqlite:///{tmp_path / 'oom' / 'study.db'}")
    assert all(t.user_attrs["accumulation_steps"] == 2 for t in study.trials)


# -- the value, the timing, the kept tensors ----------------------------------------------------

SETTINGS = dict(data="test:images", backbone="test:cnn", strategies=["full", "head-only"],
                heads=["linear"], min_steps=8, max_steps=8, eval_points=4, batch_size=16,
                image_size=32, prior="none", cache=False, test_fraction=0.25)


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    prep = prepare(SearchConfig(**SETTINGS), load_plugins(extra=[tiny_components]))
    return build_trainer(prep, torch.device("cpu"))[1]


PLAN = TrialPlan("full", {}, "linear", {}, lr=3e-3, weight_decay=1e-4)


def test_the_value_is_the_accuracy_at_the_end_of_the_budget_not_the_best_checkpoint(
        trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Validation accuracy that falls after the second checkpoint: a maximum would say 0.75.
    script = iter([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    monkeypatch.setattr(Trainer, "outcomes",
                        lambda self, *a, **k: torch.tensor(next(script), dtype=torch.bool))
    result = trainer.run(PLAN, seed=0)
    assert [acc for _, acc in result.history] == [0.5, 0.75, 0.25, 0.25]
    assert result.val_accuracy == 0.25
    assert result.val_correct == "1000"


def _before_each_validation_pass(monkeypatch: pytest.MonkeyPatch, hook) -> None:  # noqa: ANN001
    outcomes = Trainer.outcomes

    def wrapped(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        hook()
        return outcomes(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "outcomes", wrapped)


def test_training_seconds_leave_out_the_validation_passes(
        trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    _before_each_validation_pass(monkeypatch, lambda: time.sleep(0.25))
    result = trainer.run(PLAN, seed=0)
    assert result.eval_seconds >= 4 * 0.25
    assert result.train_seconds < result.wall_seconds - 4 * 0.25


def test_the_final_tensors_score_the_test_split_as_the_trained_model_does(
        trainer: Trainer) -> None:
    result = trainer.run(PLAN, seed=1)
    accuracy, correct = trainer.score(PLAN, result.trained, "test")
    assert len(correct) == len(trainer.splits["test"]) == 18
    assert accuracy == correct.count("1") / 18
    # Re-scoring validation from the kept tensors reproduces the trial's own outcomes.
    assert trainer.score(PLAN, result.trained, "val")[1] == result.val_correct
    with pytest.raises(ValueError, match="do not belong"):
        trainer.score(TrialPlan("head-only", {}, "linear", {}, 1e-2, 1e-4),
                      {**result.trained, "backbone.nonexistent": torch.zeros(1)}, "test")


def test_without_a_listener_only_the_last_checkpoint_is_validated(
        trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With pruning off nothing reads the checkpoints before the last: between=False skips
    their validation passes and trains exactly the same model to the same outcomes."""
    passes = []
    _before_each_validation_pass(monkeypatch, lambda: passes.append(1))
    every = trainer.run(PLAN, seed=2)
    assert len(passes) == 4 and len(every.history) == 4
    passes.clear()
    last = trainer.run(PLAN, seed=2, between=False)
    assert len(passes) == 1
    assert last.history == every.history[-1:]
    assert last.val_correct == every.val_correct and last.val_accuracy == every.val_accuracy
    assert all(torch.equal(last.trained[k], every.trained[k]) for k in every.trained)
    assert last.eval_seconds < every.eval_seconds


def test_a_loss_that_is_not_finite_still_stops_the_trial_between_checkpoints(
        trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    from autotl.training import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, "nan@1")
    result = trainer.run(PLAN, seed=0, between=False)
    assert result.state == "pruned" and "step 1" in result.error
    assert result.history == []  # stopped at the first checkpoint (step 2), unvalidated


# -- the counted operations (the selection rule's cost) ------------------------------------------


def test_training_operations_are_counted_the_same_every_time_and_rank_the_strategies(
        plugins: Plugins) -> None:
    trainer = _trainer(plugins, strategies=["full", "subset", "head-only"])
    full = trainer.run(_plan("full", 1e-3), seed=0)
    head = trainer.run(_plan("head-only"), seed=0)
    subset = trainer.run(TrialPlan("subset", {"freeze_depth": 1}, "linear", {}, 1e-3, 1e-4),
                         seed=0)
    # Another seed draws other images but the same shapes: the same count, unlike seconds.
    assert trainer.run(_plan("full", 1e-3), seed=3).train_flops == full.train_flops
    # Uncached, every strategy runs the whole forward pass; the backward pass stops where
    # nothing below trains, so fewer trained layers cost fewer operations.
    assert 0 < head.train_flops < subset.train_flops < full.train_flops
    assert full.activation_flops == 0.0
    # Twice the steps, twice the operations (every batch here has the same size).
    longer = _trainer(plugins, strategies=["full"], min_steps=24, max_steps=24)
    assert longer.run(_plan("full", 1e-3), seed=0).train_flops == pytest.approx(
        2 * full.train_flops)


def test_cached_activations_are_charged_once_per_row_not_once_per_step(
        plugins: Plugins, tmp_path: Path) -> None:
    config = SearchConfig(**{**FAST, "min_steps": 12, "max_steps": 12, "eval_points": 2,
                             "strategies": ["head-only"], "cache_dir": tmp_path / "cache"})
    prep = prepare(config, plugins)
    cached = build_trainer(prep, torch.device("cpu"))[1]
    uncached = _trainer(plugins)
    result = cached.run(_plan(), seed=0)
    plain = uncached.run(_plan(), seed=0)
    rows = len(prep.train)
    assert result.cached_depth == cached.base.n_groups
    # The frozen forward pass of every training row once (validation's is evaluation, left
    # out as an uncached trial's is), and the steps through the head alone.
    per_row = cached._prefix_flops_per_row(result.cached_depth)
    assert result.activation_flops == pytest.approx(per_row * rows)
    head_steps = result.train_flops - result.activation_flops
    assert 0 < head_steps < result.activation_flops
    # Uncached, the same trial runs the frozen forward pass on every step's batch instead.
    assert plain.train_flops == pytest.approx(12 * 16 * per_row + head_steps, rel=1e-6)


def test_a_convolutions_backward_pass_is_counted_as_two_forward_passes_grouped_or_not() -> None:
    """Its input's and its weight's gradients each cost a forward pass. torch's own formula
    counts a depthwise convolution's weight gradient as many times over as it has channels
    (EfficientNet's backward pass came to 41 forward passes), which made full fine-tuning look
    far dearer than LoRA on every MobileNet and EfficientNet."""
    from autotl.training import _counted, _flop_counter

    for groups in (1, 4, 64):
        conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=groups)
        x = torch.randn(2, 64, 16, 16, requires_grad=True)
        forward = 2 * 2 * 16 * 16 * 64 * (64 // groups) * 9  # multiply-adds, as torch counts
        counter = _flop_counter()
        with counter:
            conv(x).sum().backward()
        assert _counted(counter) == 3 * forward
        x = torch.randn(2, 64, 16, 16)  # no input gradient needed: the weight's alone
        counter = _flop_counter()
        with counter:
            conv(x).sum().backward()
        assert _counted(counter) == 2 * forward
